"""Explanation latency per row: the model server's explainers on fitted Pipelines.

For each model (tree: a random forest; linear: logistic regression; permutation: k-NN, the
model-agnostic fallback) and batch size, the explainer is built as the server builds it
(warm-up included, not timed), then explain() on a batch is timed ``--repeats`` times; the
median per row is reported. In-process, without HTTP (the route adds the infer request's
decoding, tens of microseconds). ``python -m benchmarks.explain --help``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

MODELS = ("tree", "linear", "permutation")


def _pipeline(kind: str, frame: pd.DataFrame, target: pd.Series) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from mlops_operator.api.trainingjob import Preprocessing
    from trainer import pipeline

    estimator = {
        "tree": RandomForestClassifier(n_estimators=100, random_state=0),
        "linear": LogisticRegression(max_iter=1000),
        "permutation": KNeighborsClassifier(),
    }[kind]
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    return pipeline.build(Preprocessing(), numeric, categorical, estimator).fit(frame, target)


def _metadata(frame: pd.DataFrame) -> Any:
    from model_server.artifact import Metadata
    from model_server.testing import feature_stats

    return Metadata.model_validate(
        {
            "name": "bench",
            "version": "1",
            "task": "classification",
            "estimator": "x",
            "target": "y",
            "features": [{"name": c, "dtype": str(frame[c].dtype)} for c in frame.columns],
            "dataDigest": "sha256:" + "0" * 64,
            "featureStats": feature_stats(frame),
        }
    )


def run(batches: list[int], repeats: int, samples: int) -> list[dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer

    from model_server.explain import Explainer

    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = frame.iloc[:, :10].copy()
    frame["band"] = np.where(frame.iloc[:, 0] > frame.iloc[:, 0].median(), "high", "low")
    meta = _metadata(frame)
    results = []
    for kind in MODELS:
        model = _pipeline(kind, frame, target)
        started = time.perf_counter()
        explainer = Explainer(model, meta, samples=samples)
        load = time.perf_counter() - started
        for batch in batches:
            rows = frame.sample(batch, random_state=batch, replace=True)
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                explainer.explain(rows)
                times.append(time.perf_counter() - began)
            median = statistics.median(times)
            results.append(
                {
                    "explainer": explainer.method,
                    "model": type(model[-1]).__name__,
                    "features": len(frame.columns),
                    "batch": batch,
                    "ms_per_row": round(1000 * median / batch, 3),
                    "ms_per_request": round(1000 * median, 3),
                    "load_seconds": round(load, 2),
                    "evaluations_per_row": samples if explainer.method == "permutation" else 1,
                }
            )
            print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain", description=__doc__)
    parser.add_argument("--batch", type=int, action="append", help="rows per request (repeat)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--samples", type=int, default=200, help="the permutation budget")
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args()
    results = run(args.batch or [1, 10, 100], args.repeats, args.samples)
    print(f"{'explainer':<12} {'batch':>5} {'ms/row':>9} {'ms/request':>11}")
    for r in results:
        print(
            f"{r['explainer']:<12} {r['batch']:>5} {r['ms_per_row']:>9} {r['ms_per_request']:>11}"
        )
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
