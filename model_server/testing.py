"""Writing artifacts for tests and benchmarks, following the artifact contract.

The trainer writes real artifacts; this helper writes the same format from any fitted
estimator so that tests fit tiny models into a temporary directory instead of committing
binaries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_server import artifact


def feature_stats(frame: pd.DataFrame, bins: int = 10) -> dict[str, dict[str, Any]]:
    """Training statistics per column, in metadata.json's featureStats format."""
    stats: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        column = frame[name]
        missing = float(column.isna().mean())
        present = column.dropna()
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = present.to_numpy(dtype=np.float64)
            edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
            index = np.searchsorted(edges, values, side="right")
            counts = np.bincount(index, minlength=len(edges) + 1)
            stats[str(name)] = {
                "kind": "numeric",
                "mean": float(values.mean()),
                "std": float(values.std()),
                "missing": missing,
                "binEdges": edges.tolist(),
                "fractions": (counts / max(len(values), 1)).tolist(),
            }
        else:
            shares = present.astype(str).value_counts(normalize=True)
            stats[str(name)] = {
                "kind": "categorical",
                "missing": missing,
                "fractions": {str(k): float(v) for k, v in shares.items()},
            }
    return stats


def write_artifact(
    directory: Path,
    estimator: Any,
    frame: pd.DataFrame,
    target: pd.Series | np.ndarray[Any, Any],
    *,
    name: str = "model",
    version: str = "1",
    task: str = "classification",
    pickle: bool = False,
) -> str:
    """Fit ``estimator`` on ``frame``/``target``, write the artifact and return its digest."""
    import skops.io

    directory.mkdir(parents=True, exist_ok=True)
    estimator.fit(frame, target)
    classes = getattr(estimator, "classes_", None)
    metadata = {
        "format": artifact.FORMAT,
        "name": name,
        "version": version,
        "task": task,
        "estimator": type(estimator).__name__,
        "target": "target",
        "features": [{"name": str(c), "dtype": str(frame[c].dtype)} for c in frame.columns],
        "classes": np.asarray(classes).tolist() if classes is not None else None,
        "dataDigest": "sha256:" + "0" * 64,
        "featureStats": feature_stats(frame),
    }
    (directory / artifact.METADATA_FILE).write_text(
        artifact.Metadata.model_validate(metadata).model_dump_json(by_alias=True)
    )
    if pickle:
        import joblib

        from model_server.model import pickle_digest

        joblib.dump(estimator, directory / "model.joblib")
        digest = pickle_digest(directory, "model.joblib")
    else:
        skops.io.dump(estimator, directory / artifact.MODEL_FILE)
        digest = artifact.compute_digest(directory)
    (directory / artifact.DIGEST_FILE).write_text(digest + "\n")
    return digest
