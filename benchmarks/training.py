"""Training benchmark: `mlops train` against a plain scikit-learn script doing the same fit.

Both run as fresh processes (imports included), on the same data, split, pipeline,
5-fold cross-validation, final fit and test-set metrics; the plain script saves its model
in the same format, with ``skops.io.dump`` (the product's artifact format, not overhead).
`mlops train` also validates the spec, reports on the data, measures permutation importance
and feature statistics, makes the skops file byte-stable, writes metadata and digest, and the
result. The overhead is (mlops - plain) / plain of the median wall time, and of the median
CPU time (user + system, steadier on a shared machine) of each.

    python -m benchmarks.training [--repeats 3] [--workload digits-forest]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLAIN_SCRIPT = """
import sys, json
import skops.io
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from {module} import {cls}

frame = datasets.load_{dataset}(as_frame=True).frame
x, y = frame.drop(columns="target").astype("float64"), frame["target"]
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=0.2, random_state=42, stratify=y
)
numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
model = Pipeline([
    ("preprocess", ColumnTransformer([("numeric", numeric, list(x.columns))])),
    ("model", {cls}(**{params}, random_state=42)),
])
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
scores = cross_validate(model, x_train, y_train, cv=cv, scoring="accuracy")["test_score"]
model.fit(x_train, y_train)
predicted = model.predict(x_test)
skops.io.dump(model, sys.argv[1])
print(json.dumps({{"accuracy": accuracy_score(y_test, predicted),
                  "f1_macro": f1_score(y_test, predicted, average="macro"),
                  "cv_mean": float(scores.mean())}}))
"""


@dataclass(frozen=True)
class Workload:
    name: str
    dataset: str
    estimator: str
    params: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        return {
            "dataset": {"builtin": self.dataset},
            "model": {"estimator": self.estimator, "params": self.params},
        }

    def plain_script(self) -> str:
        module, _, cls = self.estimator.rpartition(".")
        return PLAIN_SCRIPT.format(
            module=module, cls=cls, dataset=self.dataset, params=repr(self.params)
        )


WORKLOADS = {
    w.name: w
    for w in (
        Workload(
            "digits-mlp",
            "digits",
            "sklearn.neural_network.MLPClassifier",
            {"hidden_layer_sizes": [256], "max_iter": 200},
        ),
        Workload(
            "digits-forest",
            "digits",
            "sklearn.ensemble.RandomForestClassifier",
            {"n_estimators": 200},
        ),
        Workload(
            "cancer-boosting",
            "breast_cancer",
            "sklearn.ensemble.GradientBoostingClassifier",
            {"n_estimators": 200},
        ),
        Workload(
            "iris-logistic",
            "iris",
            "sklearn.linear_model.LogisticRegression",
            {"max_iter": 1000},
        ),
    )
}


SINGLE_THREADED = {
    **os.environ,
    **dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"),
}
"""Both sides single-threaded: BLAS threads spinning on a shared machine would measure the
scheduler, not the code."""


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float
    """user + system CPU seconds of the process: steadier than wall time on a shared machine."""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[Timing, str]:
    cpu, started = children_cpu(), time.perf_counter()
    completed = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=1800, env=SINGLE_THREADED
    )
    timing = Timing(wall=time.perf_counter() - started, cpu=children_cpu() - cpu)
    return timing, completed.stdout


def run_mlops(workload: Workload, scratch: Path, index: int) -> tuple[Timing, dict[str, Any]]:
    mlops = str(Path(sys.executable).parent / "mlops")
    termination = scratch / f"termination-{index}"
    seconds, _ = timed(
        [
            mlops,
            "train",
            "--spec-json",
            json.dumps(workload.spec()),
            "--name",
            workload.name,
            "--store",
            f"file://{scratch}/store",
            "--version",
            f"bench-{index}",
            "--termination-log",
            str(termination),
        ]
    )
    result: dict[str, Any] = json.loads(termination.read_text())
    return seconds, result


def run_plain(workload: Workload, scratch: Path, index: int) -> tuple[Timing, dict[str, Any]]:
    script = scratch / "plain.py"
    script.write_text(workload.plain_script())
    seconds, out = timed([sys.executable, str(script), str(scratch / f"plain-{index}.skops")])
    metrics: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return seconds, metrics


def bench(workload: Workload, repeats: int) -> dict[str, Any]:
    mlops_times: list[Timing] = []
    plain_times: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        scratch = Path(tmp)
        for index in range(repeats):  # interleaved, so load on the machine hits both alike
            seconds, plain = run_plain(workload, scratch, index)
            plain_times.append(seconds)
            seconds, result = run_mlops(workload, scratch, index)
            mlops_times.append(seconds)
    plain_s = statistics.median(t.wall for t in plain_times)
    mlops_s = statistics.median(t.wall for t in mlops_times)
    plain_cpu = statistics.median(t.cpu for t in plain_times)
    mlops_cpu = statistics.median(t.cpu for t in mlops_times)
    return {
        "workload": workload.name,
        "plain_s": round(plain_s, 2),
        "mlops_s": round(mlops_s, 2),
        "overhead": round((mlops_s - plain_s) / plain_s, 4),
        "plain_cpu_s": round(plain_cpu, 2),
        "mlops_cpu_s": round(mlops_cpu, 2),
        "cpu_overhead": round((mlops_cpu - plain_cpu) / plain_cpu, 4),
        "plain_accuracy": round(plain["accuracy"], 4),
        "mlops_accuracy": result["metrics"]["accuracy"],
        "plain_cv_mean": round(plain["cv_mean"], 4),
        "mlops_cv_mean": result["metrics"]["cv_mean"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workload", action="append", choices=sorted(WORKLOADS), help="default: all"
    )
    args = parser.parse_args()
    names = args.workload or list(WORKLOADS)
    print(
        f"{'workload':<18}{'plain s':>9}{'mlops s':>9}{'overhead':>10}"
        f"{'plain cpu':>11}{'mlops cpu':>11}{'overhead':>10}  accuracy (plain/mlops)"
    )
    for name in names:
        row = bench(WORKLOADS[name], args.repeats)
        print(
            f"{row['workload']:<18}{row['plain_s']:>9.2f}{row['mlops_s']:>9.2f}"
            f"{row['overhead']:>10.1%}{row['plain_cpu_s']:>11.2f}{row['mlops_cpu_s']:>11.2f}"
            f"{row['cpu_overhead']:>10.1%}  "
            f"{row['plain_accuracy']:.4f}/{row['mlops_accuracy']:.4f}",
            flush=True,
        )
        print(json.dumps(row), file=sys.stderr)


if __name__ == "__main__":
    main()
