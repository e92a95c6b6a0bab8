"""One self-contained HTML page per run (the images inline, nothing fetched)."""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from model_server.artifact import Metadata
from trainer.htmlreport import plots

STYLE = """
body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{border:1px solid #eee}
.warn{color:#a40}
"""


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...], cls: str) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><tr>{header}</tr>{body}</table>'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _section(title: str, ident: str, content: str) -> str:
    return f'<section id="{ident}"><h2>{html.escape(title)}</h2>{content}</section>'


def _curves(evaluation: Any) -> str:
    if evaluation is None:
        return ""
    if evaluation.get("task") == "regression":
        png = plots.residuals(np.asarray(evaluation["predicted"]), np.asarray(evaluation["truth"]))
        return _image(png, "residuals")
    proba, truth, classes = evaluation.get("proba"), evaluation["truth"], evaluation["classes"]
    if proba is None:
        return ""
    proba, truth = np.asarray(proba), np.asarray(truth)
    shown = classes[1:] if len(classes) == 2 else classes
    roc, pr = [], []
    for label in shown:
        index = classes.index(label)
        positive = (truth == label).astype(int)
        if positive.min() == positive.max():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, index])
        precision, recall, _ = precision_recall_curve(positive, proba[:, index])
        roc.append((str(label), fpr, tpr, float(auc(fpr, tpr))))
        ap = float(average_precision_score(positive, proba[:, index]))
        pr.append((str(label), recall, precision, ap))
    if not roc:
        return ""
    return _image(plots.curves("roc", roc), "ROC curve") + _image(
        plots.curves("pr", pr), "precision-recall curve"
    )


def evaluation(pipeline: Any, x: Any, y: Any, task: str) -> dict[str, Any]:
    """What the curves need: test-set truth, predictions and probabilities."""
    truth = np.asarray(y)
    if task == "regression":
        return {"task": task, "truth": truth, "predicted": np.asarray(pipeline.predict(x))}
    proba = pipeline.predict_proba(x) if hasattr(pipeline, "predict_proba") else None
    return {"task": task, "truth": truth, "proba": proba, "classes": list(pipeline.classes_)}


def page(meta: Metadata, evaluated: dict[str, Any] | None, fitted: Any) -> str:
    extra = meta.model_extra or {}
    parts = [
        f"<h1>{html.escape(str(extra.get('namespace', '')))}/{html.escape(meta.name)} "
        f"version {html.escape(meta.version)}</h1>",
        f"<p>{html.escape(meta.estimator)} · {meta.task} · target {html.escape(meta.target)}"
        f" · data {html.escape(meta.data_digest)}</p>",
    ]
    metrics = [(k, v) for k, v in meta.metrics.items()]
    parts.append(_section("Metrics", "metrics", _table(metrics, ("metric", "value"), "metrics")))
    pictures = []
    matrix = extra.get("confusionMatrix")
    if matrix:
        pictures.append(_image(plots.confusion(matrix["labels"], matrix["matrix"]), "confusion"))
    pictures.append(_curves(evaluated))
    parts.append(
        _section("Evaluation", "evaluation", f'<div class="plots">{"".join(pictures)}</div>')
    )
    importance = extra.get("importance") or {}
    shap = (extra.get("shapImportance") or {}).get("importance") or {}
    pictures = []
    if importance:
        drops = {k: v["mean"] for k, v in importance.items()}
        pictures.append(_image(plots.bars(drops, "Permutation importance", "score drop"), "perm"))
    if shap:
        pictures.append(_image(plots.bars(shap, "SHAP summary", "mean |SHAP value|"), "shap"))
    parts.append(
        _section(
            "Feature importance", "importance", f'<div class="plots">{"".join(pictures)}</div>'
        )
    )
    parts.append(_section("Data quality and privacy", "data", _data(extra)))
    parts.append(_section("Search", "search", _search(fitted)))
    body = "\n".join(parts)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(meta.name)} {html.escape(meta.version)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _data(extra: dict[str, Any]) -> str:
    report = extra.get("dataReport") or {}
    rows = [
        ("rows", report.get("rows")),
        ("duplicates", report.get("duplicates")),
        ("max missing fraction", report.get("maxMissingFraction")),
    ]
    content = _table(rows, ("", ""), "quality")
    privacy = report.get("privacy") or {}
    declared = [
        ("dropped", ", ".join(privacy.get("dropped") or []) or "-"),
        ("hashed", ", ".join(privacy.get("hashed") or []) or "-"),
        ("kept", ", ".join(privacy.get("kept") or []) or "-"),
    ]
    content += "<h3>Columns</h3>" + _table(declared, ("", "columns"), "columns")
    findings = privacy.get("pii") or []
    pii = [(f["column"], f["kind"], f["matches"], f["scanned"], f["kept"]) for f in findings]
    content += "<h3>Personal-data scan</h3>"
    content += (
        _table(pii, ("column", "looks like", "matches", "scanned", "kept"), "pii")
        if pii
        else "<p>No column looks like personal data.</p>"
    )
    budget = (extra.get("privacy") or {}).get("spent")
    if budget:
        spent = f"epsilon {budget['epsilon']:g}, delta {budget['delta']:g}"
        content += f"<p>Differential privacy: spent {spent}.</p>"
    return content


def _search(fitted: Any) -> str:
    status = getattr(fitted, "search", None)
    if status is not None:
        rows = [
            (key.replace("_", " "), value)
            for key, value in status.model_dump().items()
            if value is not None
        ]
        return _table(rows, ("", ""), "trials")
    if getattr(fitted, "best_params", None) is not None:
        best = [("candidates", fitted.candidates), ("best params", fitted.best_params)]
        return _table(best, ("", ""), "trials")
    scores = ", ".join(f"{s:.4g}" for s in getattr(fitted, "cv_scores", []))
    return f"<p>No search: cross-validation {html.escape(fitted.cv_scoring)} {scores}.</p>"
