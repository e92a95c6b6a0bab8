"""Per-prediction explanations with shap: attributions in the model's input feature names.

The served Pipeline is split into its fitted preprocessing and its final estimator. Rows are
transformed, the estimator is explained on the transformed columns, and the attributions of
the columns that came from one input feature (e.g. its one-hot columns) are summed: sums keep
SHAP's additivity, so per row ``expected_value + sum(attributions) == output`` still holds.

- ``tree``: shap's exact TreeExplainer (path-dependent, no background) for tree ensembles;
- ``linear``: shap's LinearExplainer (exact for linear models) on the estimator's margin;
- ``permutation``: shap's PermutationExplainer on any estimator, bounded by a budget of model
  evaluations per row (its values are still additive).

The background that ``linear`` and ``permutation`` need is synthesized from the training-set
statistics already in metadata.json (quantile edges, category frequencies): the artifact holds
no training rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from model_server.artifact import CategoricalStats, Metadata, NumericStats

log = logging.getLogger(__name__)

Method = Literal["tree", "linear", "permutation"]
Array = np.ndarray[Any, Any]
BACKGROUND_ROWS = 9
"""Synthesized background rows (the deciles of each numeric feature)."""


class ExplainError(Exception):
    """The model cannot be explained (an unsupported Pipeline shape)."""


@dataclass(frozen=True)
class Explanation:
    """Attributions of a batch: ``values[row, feature, target]`` (input features)."""

    method: Method
    output: str
    """What the attributions add up to: probability, margin or prediction."""
    targets: list[Any]
    """The output dimensions: class labels, or the regression target."""
    features: list[str]
    expected_value: list[float]
    values: Array
    outputs: Array
    """The model's output per row and target, in the ``output`` space."""
    evaluations: int
    """Model evaluations spent (the cost; rows for the exact explainers)."""

    def to_json(self) -> dict[str, Any]:
        rows = []
        for row in range(self.values.shape[0]):
            rows.append(
                {
                    "output": self.outputs[row].tolist(),
                    "attributions": {
                        feature: self.values[row, index].tolist()
                        for index, feature in enumerate(self.features)
                    },
                }
            )
        return {
            "explainer": self.method,
            "output": self.output,
            "targets": self.targets,
            "features": self.features,
            "expected_value": self.expected_value,
            "explanations": rows,
        }


def split_pipeline(estimator: Any) -> tuple[Any | None, Any]:
    """(the fitted preprocessing or None, the final estimator)."""
    steps = getattr(estimator, "steps", None)
    if not steps:
        return None, estimator
    if len(steps) == 1:
        return None, steps[0][1]
    return estimator[:-1], steps[-1][1]


def column_owners(preprocess: Any, features: list[str], width: int) -> list[int]:
    """For each transformed column, the index of the input feature it came from."""
    if preprocess is None:
        if width != len(features):
            raise ExplainError(f"the model takes {width} columns for {len(features)} features")
        return list(range(width))
    transformer = preprocess.steps[-1][1] if hasattr(preprocess, "steps") else preprocess
    blocks = getattr(transformer, "transformers_", None)
    owners: list[int] = []
    if blocks is None:
        owners = list(range(len(features)))
    else:
        for _name, part, columns in blocks:
            if part == "drop" or len(columns) == 0:
                continue
            names = [features[c] if isinstance(c, int) else c for c in columns]
            for column, span in zip(names, _widths(part, len(names)), strict=True):
                owners.extend([features.index(column)] * span)
    if len(owners) != width:
        raise ExplainError(
            f"cannot map the preprocessing's {width} output columns back to the "
            f"{len(features)} input features"
        )
    return owners


def _widths(part: Any, count: int) -> list[int]:
    last = part.steps[-1][1] if hasattr(part, "steps") else part
    categories = getattr(last, "categories_", None)
    if categories is not None and type(last).__name__ == "OneHotEncoder":
        if getattr(last, "drop_idx_", None) is not None:
            raise ExplainError("one-hot encoders that drop a category are not supported")
        return [len(c) for c in categories]
    return [1] * count


def background(metadata: Metadata, rows: int = BACKGROUND_ROWS) -> pd.DataFrame:
    """Representative input rows from the training statistics (no training row is stored)."""
    columns: dict[str, Any] = {}
    for feature in metadata.features:
        stats = metadata.feature_stats.get(feature.name)
        if isinstance(stats, NumericStats):
            edges = stats.bin_edges or [stats.mean]
            positions = np.linspace(0, len(edges) - 1, rows)
            columns[feature.name] = np.interp(positions, np.arange(len(edges)), edges)
        elif isinstance(stats, CategoricalStats) and stats.fractions:
            columns[feature.name] = _spread(stats.fractions, rows)
        else:
            columns[feature.name] = np.zeros(rows)
    frame = pd.DataFrame(columns)
    for feature in metadata.features:
        if feature.dtype not in ("object", "string", "str", "category"):
            try:
                frame[feature.name] = frame[feature.name].astype(feature.dtype)
            except (TypeError, ValueError):
                continue
    return frame


def _spread(fractions: dict[str, float], rows: int) -> list[str]:
    """Categories in proportion to their frequency (largest remainder), most frequent first."""
    ranked = sorted(fractions.items(), key=lambda item: -item[1])
    counts = [int(share * rows) for _, share in ranked]
    for index in range(rows - sum(counts)):
        counts[index % len(counts)] += 1
    return [
        category for (category, _), count in zip(ranked, counts, strict=True) for _ in [0] * count
    ]


def _dense(matrix: Any) -> Array:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


class Explainer:
    """Explains a fitted estimator (usually our Pipeline) for the rows of a DataFrame."""

    def __init__(
        self,
        estimator: Any,
        metadata: Metadata,
        *,
        samples: int = 200,
        method: Method | None = None,
        warm: bool = True,
    ) -> None:
        self.features = [f.name for f in metadata.features]
        self.samples = samples
        self.preprocess, self.model = split_pipeline(estimator)
        self.classifier = metadata.task == "classification"
        self.classes = (
            np.asarray(self.model.classes_).tolist() if hasattr(self.model, "classes_") else None
        )
        self.target = metadata.target
        self._background = self._transform(background(metadata))
        self.owners = column_owners(self.preprocess, self.features, self._background.shape[1])
        self._matrix = np.zeros((self._background.shape[1], len(self.features)))
        self._matrix[np.arange(len(self.owners)), self.owners] = 1.0
        self.method, self._shap = self._choose(method)
        if warm:  # shap compiles (numba) on first use: pay it at load, not on a request
            self.explain(background(metadata).iloc[:1])

    def _transform(self, frame: pd.DataFrame) -> Array:
        return (
            _dense(self.preprocess.transform(frame))
            if self.preprocess is not None
            else _dense(frame)
        )

    def _choose(self, method: Method | None) -> tuple[Method, Any]:
        import shap

        if method in (None, "tree"):
            try:
                return "tree", shap.TreeExplainer(self.model)
            except Exception as error:
                if method == "tree":
                    raise ExplainError(f"TreeExplainer: {error}") from error
        if method in (None, "linear") and hasattr(self.model, "coef_"):
            try:
                masker = shap.maskers.Independent(self._background)
                return "linear", shap.LinearExplainer(self.model, masker)
            except Exception as error:
                if method == "linear":
                    raise ExplainError(f"LinearExplainer: {error}") from error
        masker = shap.maskers.Independent(self._background)
        return "permutation", shap.PermutationExplainer(self._function, masker)

    def _function(self, z: Array) -> Array:
        if self.classifier and hasattr(self.model, "predict_proba"):
            return np.asarray(self.model.predict_proba(z), dtype=np.float64)
        return np.asarray(self.model.predict(z), dtype=np.float64)

    def output_space(self) -> str:
        if self.method == "linear":
            return "margin" if self.classifier else "prediction"
        if self.method == "tree":
            tree_output = getattr(self._shap, "model", None)
            kind = getattr(tree_output, "tree_output", None)
            if self.classifier:
                return "probability" if kind == "probability" else "margin"
            return "prediction"
        return (
            "probability"
            if self.classifier and hasattr(self.model, "predict_proba")
            else "prediction"
        )

    def _outputs(self, z: Array) -> Array:
        """The model's own output in the space the attributions explain."""
        space = self.output_space()
        if space == "probability":
            return np.asarray(self.model.predict_proba(z), dtype=np.float64)
        if space == "margin":
            return np.asarray(self.model.decision_function(z), dtype=np.float64)
        return np.asarray(self.model.predict(z), dtype=np.float64)

    def targets(self, dimensions: int) -> list[Any]:
        if self.classes is None:
            return [self.target]
        if dimensions == len(self.classes):
            return list(self.classes)
        return list(self.classes[-dimensions:])  # a binary margin explains the positive class

    def explain(self, frame: pd.DataFrame) -> Explanation:
        z = self._transform(frame)
        evaluations = len(z)
        if self.method == "permutation":
            budget = max(self.samples, 2 * z.shape[1] + 1)
            result = self._shap(z, max_evals=budget, silent=True)
            evaluations = budget * len(z)
        elif self.method == "tree":
            result = self._shap(z, check_additivity=False)
        else:
            result = self._shap(z)
        raw = np.asarray(result.values, dtype=np.float64)
        if raw.ndim == 2:
            raw = raw[:, :, None]
        base = np.atleast_1d(np.asarray(result.base_values, dtype=np.float64))
        if base.ndim == 2:
            base = base[0]
        values = np.einsum("rct,cf->rft", raw, self._matrix)
        outputs = self._outputs(z).reshape(len(z), -1)
        if outputs.shape[1] != raw.shape[2]:  # a binary margin: the positive class's
            outputs = outputs[:, -raw.shape[2] :]
        return Explanation(
            method=self.method,
            output=self.output_space(),
            targets=self.targets(raw.shape[2]),
            features=self.features,
            expected_value=base.tolist(),
            values=values,
            outputs=outputs,
            evaluations=evaluations,
        )
