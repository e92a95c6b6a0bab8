"""Search benchmark: one worker against N for the same study, and the best score each reaches.

Each run is `mlops train` processes (imports included), one per worker index, on the same
version and so one study in a scratch store; worker 0 refits and publishes. Wall time is
until worker 0 has published; CPU time is that of all the workers together (user + system:
on a shared machine it says what the work cost, whatever else runs). The search's own time
(first trial start to last trial end, ``status.search.seconds``) and the rest (start-up,
data, refit, evaluation, ONNX, publish) are reported apart: the rest does not shrink with
workers, so with N nodes the time to expect is ``rest + search / N`` (plus a little
coordination per trial through the study).

Each worker runs in a session of its own, as each Pod runs in a cgroup of its own: Linux's
autogroup scheduling gives one CPU share per session, so workers of one session would split
a single share between them and measure nothing on a busy machine.

    python -m benchmarks.search [--workers 1 --workers 2] [--repeats 1] [--workload grid]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.training import SINGLE_THREADED, children_cpu

FOREST = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 40}}
WORKLOADS: dict[str, dict[str, Any]] = {
    "grid": {
        "dataset": {"builtin": "digits"},
        "model": FOREST,
        "search": {
            "strategy": "grid",
            "params": {"max_depth": [4, 8, 12, 16], "max_features": ["sqrt", "log2", 0.2, 0.4]},
            "cv": 3,
        },
    },
    "bayesian": {
        "dataset": {"builtin": "digits"},
        "model": FOREST,
        "search": {
            "strategy": "bayesian",
            "ranges": {
                "max_depth": {"type": "int", "low": 2, "high": 20},
                "max_features": {"type": "float", "low": 0.05, "high": 0.6, "log": True},
            },
            "nTrials": 16,
            "cv": 3,
            "pruning": False,
        },
    },
}


def run(spec: dict[str, Any], workers: int, scratch: Path, tag: str) -> dict[str, Any]:
    spec = {**spec, "search": {**spec["search"], "parallelism": workers}}
    mlops = str(Path(sys.executable).parent / "mlops")
    cpu, started = children_cpu(), time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                mlops,
                "train",
                "--spec-json",
                json.dumps(spec),
                "--name",
                "bench",
                "--store",
                (scratch / "store").as_uri(),
                "--version",
                tag,
                "--worker-index",
                str(index),
                "--termination-log",
                str(scratch / f"{tag}-{index}.json"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=SINGLE_THREADED,
            start_new_session=True,
        )
        for index in range(workers)
    ]
    codes = [p.wait(timeout=3600) for p in processes]
    wall = time.perf_counter() - started
    used = children_cpu() - cpu
    if codes[0] != 0:
        raise RuntimeError(f"worker 0 exited with {codes[0]}")
    result: dict[str, Any] = json.loads((scratch / f"{tag}-0.json").read_text())
    search = result["search"]
    return {
        "wall_s": wall,
        "cpu_s": used,
        "search_s": float(search["seconds"]),
        "trials": search["completed"] + search["pruned"],
        "best": float(search["bestScore"]),
        "per_trial_s": float(search["secondsPerTrial"]),
    }


def bench(name: str, workers: list[int], repeats: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-search-") as tmp:
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in workers}
        for repeat in range(repeats):  # interleaved, so load on the machine hits all alike
            for n in workers:
                runs[n].append(run(WORKLOADS[name], n, Path(tmp), f"{name}-{n}-{repeat}"))
        base = statistics.median(r["wall_s"] for r in runs[workers[0]])
        for n in workers:
            wall = statistics.median(r["wall_s"] for r in runs[n])
            search = statistics.median(r["search_s"] for r in runs[n])
            rows.append(
                {
                    "workload": name,
                    "workers": n,
                    "wall_s": round(wall, 2),
                    "cpu_s": round(statistics.median(r["cpu_s"] for r in runs[n]), 2),
                    "search_s": round(search, 2),
                    "rest_s": round(wall - search, 2),
                    "speedup": round(base / wall, 3),
                    "trials": runs[n][0]["trials"],
                    "per_trial_s": round(statistics.median(r["per_trial_s"] for r in runs[n]), 3),
                    "best": [round(r["best"], 4) for r in runs[n]],
                }
            )
    return rows


def predicted(row: dict[str, Any], nodes: int) -> float:
    """Wall time on ``nodes`` nodes from a one-worker run: the rest, plus the search split."""
    return float(row["rest_s"]) + float(row["search_s"]) / nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, action="append", help="default: 1 and 2")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    args = parser.parse_args()
    workers = args.workers or [1, 2]
    print(f"search benchmark on {os.cpu_count()} CPUs")
    print(
        f"{'workload':<10}{'workers':>8}{'wall s':>9}{'cpu s':>8}{'search s':>10}{'rest s':>8}"
        f"{'speed-up':>10}{'trials':>8}{'s/trial':>9}  best cv score"
    )
    for name in args.workload or list(WORKLOADS):
        rows = bench(name, workers, args.repeats)
        for row in rows:
            print(
                f"{row['workload']:<10}{row['workers']:>8}{row['wall_s']:>9.2f}{row['cpu_s']:>8.1f}"
                f"{row['search_s']:>10.2f}{row['rest_s']:>8.2f}{row['speedup']:>10.2f}"
                f"{row['trials']:>8}{row['per_trial_s']:>9.3f}  {row['best']}",
                flush=True,
            )
            print(json.dumps(row), file=sys.stderr)
        one = rows[0]
        if one["workers"] == 1:
            shown = ", ".join(
                f"{n} nodes {one['wall_s'] / predicted(one, n):.1f}x" for n in (2, 4, 8, 16)
            )
            print(f"{'':<10}predicted speed-up on separate nodes: {shown}", flush=True)


if __name__ == "__main__":
    main()
