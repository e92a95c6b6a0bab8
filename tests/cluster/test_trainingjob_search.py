"""A parallel search on a real control plane: the operator's Indexed Job, one Pod per worker.

kwok runs the Pods on its simulated node; the test plays their containers: for each Pod it
runs a real `mlops train` on this machine with the Pod's own environment (spec, name,
version, and the JOB_COMPLETION_INDEX the Job controller gave it) against the claim's
directory, and ends the Pod with the process's exit code and termination message, as the
kubelet would. One worker is killed mid-trial: the Job replaces its Pod, which resumes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from .harness import Cluster, wait_for
from .operator_runner import OperatorProcess, model_store
from .searches import GROUP, PLURAL, VERSION, running, status_of, study_trials, trainingjob
from .trainer_pods import Container, operator_for_played_pods

SEARCH = {
    "strategy": "grid",
    "params": {"max_depth": [2, 4, 6, 8, 10, 12], "min_samples_leaf": [1, 4]},
    "cv": 3,
    "parallelism": 3,
}
"""12 candidates over 3 workers: 4 each."""


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    with operator_for_played_pods(cluster) as runner:
        yield runner


def test_a_parallel_search_runs_as_an_indexed_job_and_publishes_one_artifact(
    cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    model_store(cluster, namespace)
    pvc_root = tmp_path / "pvc"
    (pvc_root / "mlops-models").mkdir(parents=True)
    custom = client.CustomObjectsApi(cluster.api)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, trainingjob("digits", SEARCH)
    )
    first = {
        i: wait_for(f"worker {i}", lambda i=i: running(cluster, namespace, "digits", i), 90)
        for i in ("0", "1", "2")
    }
    job = client.BatchV1Api(cluster.api).read_namespaced_job("digits-train", namespace)
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == (
        "Indexed",
        3,
        3,
    )
    planned = wait_for(
        "status.search", lambda: status_of(custom, namespace, "digits").get("search"), 30
    )
    assert planned["progress"] == "0/12"
    table = cluster.kubectl("get", "tj", "digits", "-n", namespace).stdout
    assert "TRIALS" in table.splitlines()[0]
    assert "0/12" in table

    # Worker 1's node dies in its second trial: no result, its trial left RUNNING.
    victim = Container(first["1"], pvc_root, tmp_path)
    wait_for("worker 1's first trial", lambda: victim.trials_logged() or None, 180)
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=60)
    cluster.set_pod_terminated(victim.pod, 137, "", "Error")
    again = wait_for("worker 1's new Pod", lambda: running(cluster, namespace, "digits", "1"), 60)
    assert again.metadata.name != victim.pod.metadata.name

    containers = [Container(p, pvc_root, tmp_path) for p in (first["0"], again, first["2"])]
    assert [c.finish(cluster) for c in reversed(containers)] == [0, 0, 0]

    def succeeded() -> dict[str, Any] | None:
        status = status_of(custom, namespace, "digits")
        return status if status.get("phase") == "Succeeded" else None

    status = wait_for("digits Succeeded", succeeded, 60)
    search = status["search"]
    assert (search["completed"], search["failed"], search["planned"]) == (12, 1, 12)
    assert search["progress"] == "12/12"
    assert search["workersDone"] == 3
    assert search["bestParams"]["max_depth"] in SEARCH["params"]["max_depth"]
    assert status["attempts"] == 4  # three workers and one replacement

    store = pvc_root / "mlops-models" / namespace / "digits"
    version = status["model"]["version"]
    assert sorted(p.name for p in store.iterdir()) == [".search", version]  # one artifact
    complete, lost = study_trials(pvc_root / "mlops-models", namespace, "digits", version)
    assert complete == list(range(12))  # no candidate ran twice to completion
    assert lost == [1]
    logged = [line for c in containers for line in c.trials_logged()]
    assert len(logged) == 12 - len(victim.trials_logged())
    assert all(line["seconds"] > 0 for line in logged)
    table = cluster.kubectl("get", "tj", "digits", "-n", namespace).stdout
    assert "12/12" in table
    time.sleep(0)
