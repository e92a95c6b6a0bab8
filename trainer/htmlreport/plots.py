"""The report's pictures, as PNG bytes (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def _figure(width: float = 5.0, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion(labels: list[Any], matrix: list[list[int]]) -> bytes:
    figure = _figure()
    axes = figure.subplots()
    values = np.asarray(matrix)
    axes.imshow(values, cmap="Blues")
    axes.set_xticks(range(len(labels)), [str(x) for x in labels], rotation=45)
    axes.set_yticks(range(len(labels)), [str(x) for x in labels])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (row, column), value in np.ndenumerate(values):
        axes.text(column, row, str(value), ha="center", va="center")
    axes.set_title("Confusion matrix (test set)")
    return _png(figure)


def bars(values: dict[str, float], title: str, xlabel: str, top: int = 15) -> bytes:
    items = list(values.items())[:top][::-1]
    figure = _figure(5.0, max(2.0, 0.3 * len(items) + 1))
    axes = figure.subplots()
    axes.barh([k for k, _ in items], [v for _, v in items], color="#3b75af")
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    return _png(figure)


def curves(kind: str, series: list[tuple[str, np.ndarray, np.ndarray, float]]) -> bytes:
    """ROC or precision-recall: (label, x, y, area) per class."""
    figure = _figure()
    axes = figure.subplots()
    for label, x, y, area in series:
        axes.plot(x, y, label=f"{label} ({area:.3f})")
    if kind == "roc":
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey")
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
        axes.set_title("ROC (AUC)")
    else:
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        axes.set_title("Precision-recall (AP)")
    axes.legend(fontsize="small")
    return _png(figure)


def residuals(predicted: np.ndarray, truth: np.ndarray) -> bytes:
    figure = _figure(8.0, 3.6)
    left, right = figure.subplots(1, 2)
    left.scatter(truth, predicted, s=8, alpha=0.6)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    left.plot([low, high], [low, high], linestyle="--", color="grey")
    left.set_xlabel("true")
    left.set_ylabel("predicted")
    left.set_title("Predicted vs true")
    right.scatter(predicted, truth - predicted, s=8, alpha=0.6)
    right.axhline(0, linestyle="--", color="grey")
    right.set_xlabel("predicted")
    right.set_ylabel("residual")
    right.set_title("Residuals")
    return _png(figure)
