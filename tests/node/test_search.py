"""A parallel hyperparameter search on the real node, as a user runs it: the chart installed
with helm (the operator in its Pod), a TrainingJob with `search.parallelism: 2` applied, and
the operator's Indexed Job running one real `mlops train` Pod per worker on `real-node-0`,
sharing one Optuna study on the model store's volume. One worker's Pod is deleted while it
runs a trial: the kubelet stops it (SIGTERM), the Job replaces it with the same index, and the
new Pod runs the lost candidate again and the rest of its part; worker 0 publishes once.

The twin on the simulated node, where the test plays the containers, is
tests/cluster/test_trainingjob_search.py; both read the study with tests/cluster/searches.py.
The tests run in order and share one search; a failed one skips the later ones.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest
from kubernetes import client, watch

from mlops_operator.api.workload import ExitCode
from mlops_operator.builders.job import model_version
from mlops_operator.status.trainingjob import pod_result
from tests.cluster.harness import Cluster, wait_for
from tests.cluster.searches import (
    GROUP,
    LABEL,
    PLURAL,
    VERSION,
    running,
    shared_study,
    status_of,
    study_trials,
    trainingjob,
)
from tests.cluster.trainer_pods import INDEX

from .chart import Release
from .host import NODE_NAME
from .realnode import RealNode, pod_logs

NAME = "digits"
WORKERS = 2  # the machine's cores
TREES = 150  # about 3 s a trial on two busy cores: a deletion lands inside one
DEPTHS = [8, 10, 12, 14, 16, 20]
SEARCH = {"strategy": "grid", "params": {"max_depth": DEPTHS}, "cv": 3, "parallelism": WORKERS}
"""6 candidates over 2 workers: worker 0 takes 0, 2, 4; worker 1 takes 1, 3, 5."""
CANDIDATES = len(DEPTHS)
FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"


class PodHistory:
    """Every state the API server showed of the TrainingJob's Pods (a watch in a thread):
    a deleted Pod's last state too, which a poll may miss."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.core, self.namespace = core, namespace
        self.last: dict[str, client.V1Pod] = {}
        self.deleted: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-history", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        selector, version = f"{LABEL}={NAME}", ""
        while not self._stop.is_set():
            try:
                if not version:
                    listed = self.core.list_namespaced_pod(self.namespace, label_selector=selector)
                    for pod in listed.items:
                        self._record("ADDED", pod)
                    version = listed.metadata.resource_version
                for event in watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=selector,
                    resource_version=version,
                    timeout_seconds=2,
                ):
                    if event["type"] == "ERROR":  # e.g. the version is too old: list again
                        version = ""
                        break
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    self._record(event["type"], pod)
            except client.ApiException as error:
                if error.status == 410:  # too old: list again
                    version = ""
                time.sleep(0.2)
            except Exception:  # a connection dropped: watch again from where it was
                time.sleep(0.2)

    def _record(self, kind: str, pod: client.V1Pod) -> None:
        with self._lock:
            self.last[pod.metadata.name] = pod
            if kind == "DELETED":
                self.deleted.add(pod.metadata.name)

    def pods(self) -> list[client.V1Pod]:
        """Each Pod's last state, oldest first."""
        with self._lock:
            found = list(self.last.values())
        return sorted(found, key=lambda p: p.metadata.creation_timestamp)

    def of_index(self, index: str) -> list[client.V1Pod]:
        return [p for p in self.pods() if p.metadata.annotations.get(INDEX) == index]


@dataclass
class Victim:
    pod: str
    trial: int  # the study's number of the trial it was running
    candidate: int
    into_trial: float  # seconds into that trial when the Pod was deleted
    deleted_at: float  # monotonic


@dataclass
class Search:
    release: Release
    history: PodHistory
    custom: client.CustomObjectsApi
    timings: dict[str, float]
    created_at: float = 0.0
    version: str = ""
    store: Path | None = None
    victim: Victim | None = None
    reached: list[str] = field(default_factory=list)

    @property
    def cluster(self) -> Cluster:
        return self.release.cluster

    @property
    def namespace(self) -> str:
        return self.release.watch

    def after(self, step: str) -> None:
        """Skips a test whose earlier step failed."""
        if step not in self.reached:
            pytest.skip(f"an earlier step did not finish: {step}")

    def status(self) -> dict[str, Any]:
        return status_of(self.custom, self.namespace, NAME)

    def study(self) -> optuna.Study:
        assert self.store is not None
        return shared_study(self.store, self.namespace, NAME, self.version)

    def result(self, pod: client.V1Pod) -> dict[str, Any]:
        """The trainer's result in the Pod's termination message, read as the operator does."""
        status = self.cluster.api.sanitize_for_serialization(pod.status)  # camelCase
        return pod_result({"status": status}) or {}


@pytest.fixture(scope="module")
def search(cluster: Cluster, node: RealNode) -> Iterator[Search]:
    release = Release.create(cluster, node, "search", "search")
    history = PodHistory(cluster.core, release.watch)
    found = Search(release, history, client.CustomObjectsApi(cluster.api), node.e2e_timings)
    started = time.monotonic()
    try:
        release.run("install")
        found.timings["search: helm install"] = round(time.monotonic() - started, 1)
        history.start()
        yield found
    finally:
        history.stop()
        for namespace in (release.watch, release.namespace):
            (node.root / f"pods-{namespace}.json").write_text(
                json.dumps(pod_logs(cluster.core, namespace), indent=1)
            )
        (node.root / "search-pods.json").write_text(
            json.dumps([cluster.api.sanitize_for_serialization(p) for p in history.pods()])
        )
        if not release.failed:
            release.run("uninstall")
        for namespace in (release.watch, release.namespace):
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        found.timings["search: module"] = round(time.monotonic() - started, 1)


def command_of(pod: client.V1Pod) -> list[str]:
    container = pod.spec.containers[0]
    return [*(container.command or []), *(container.args or [])]


def terminated(pod: client.V1Pod) -> client.V1ContainerStateTerminated | None:
    statuses = pod.status.container_statuses or []
    return statuses[0].state.terminated if statuses else None


def run_seconds(pod: client.V1Pod) -> float:
    state = terminated(pod)
    assert state is not None, pod.status
    return round((state.finished_at - state.started_at).total_seconds(), 1)


def test_the_operator_runs_the_search_as_an_indexed_job_of_real_pods(search: Search) -> None:
    body = trainingjob(NAME, SEARCH)
    body["spec"]["model"]["params"]["n_estimators"] = TREES
    search.created_at = time.monotonic()
    created = search.custom.create_namespaced_custom_object(
        GROUP, VERSION, search.namespace, PLURAL, body
    )
    search.version = model_version(created)
    workers = {
        index: wait_for(
            f"worker {index}'s Pod running",
            lambda index=index: running(search.cluster, search.namespace, NAME, index),
            180,
        )
        for index in ("0", "1")
    }
    search.timings["search: apply -> both workers running"] = round(
        time.monotonic() - search.created_at, 1
    )
    job = client.BatchV1Api(search.cluster.api).read_namespaced_job(
        f"{NAME}-train", search.namespace
    )
    spec = job.spec
    assert (spec.completion_mode, spec.completions, spec.parallelism) == (
        "Indexed",
        WORKERS,
        WORKERS,
    )
    assert (spec.backoff_limit_per_index, spec.pod_replacement_policy) == (1, "Failed")
    for pod in workers.values():
        assert pod.spec.node_name == NODE_NAME
        assert "train" in command_of(pod), command_of(pod)
        assert pod.spec.containers[0].image == search.release.image
        assert pod.status.container_statuses[0].image_id, "the kubelet ran the image"
    planned = wait_for("status.search", lambda: search.status().get("search"), 30)
    assert (planned["planned"], planned["progress"]) == (CANDIDATES, f"0/{CANDIDATES}")
    assert planned["workers"] == WORKERS
    search.reached.append("running")


def test_a_worker_pod_deleted_mid_trial_is_replaced_by_the_job(search: Search) -> None:
    search.after("running")
    search.store = search.release.model_store()

    def mid_second_trial() -> optuna.trial.FrozenTrial | None:
        """Worker 1's running trial, once it finished one."""
        try:
            trials = search.study().get_trials(deepcopy=False)
        except (FileNotFoundError, KeyError):  # no journal, or no study in it, yet
            return None
        mine = [t for t in trials if t.user_attrs.get("worker") == 1]
        done = [t for t in mine if t.state == optuna.trial.TrialState.COMPLETE]
        live = [t for t in mine if t.state == optuna.trial.TrialState.RUNNING]
        return live[0] if done and live else None

    trial = wait_for("worker 1 in its second trial", mid_second_trial, 180)
    pod = running(search.cluster, search.namespace, NAME, "1")
    assert pod is not None
    search.cluster.core.delete_namespaced_pod(pod.metadata.name, search.namespace)
    search.victim = Victim(
        pod.metadata.name,
        trial.number,
        int(trial.user_attrs["candidate"]),
        round(time.time() - trial.datetime_start.timestamp(), 2),
        time.monotonic(),
    )
    again = wait_for(
        "worker 1's replacement running",
        lambda: (
            (p := running(search.cluster, search.namespace, NAME, "1"))
            and p.metadata.name != pod.metadata.name
            and p
        ),
        120,
    )
    search.timings["search: Pod deleted -> replacement running"] = round(
        time.monotonic() - search.victim.deleted_at, 1
    )
    assert again.spec.node_name == NODE_NAME
    assert again.metadata.annotations.get(FAILURE_COUNT) == "1"  # the Job's retry of index 1

    # The kubelet stopped the deleted Pod with SIGTERM: the trainer reported it and exited.
    gone = wait_for("the deleted Pod's end", lambda: ended(search.history, pod.metadata.name), 60)
    state = terminated(gone)
    assert state is not None
    assert state.exit_code == ExitCode.TERMINATED, state
    assert search.result(gone).get("reason") == "Terminated"
    search.timings["search: the deleted Pod ran"] = run_seconds(gone)
    search.reached.append("replaced")


def ended(history: PodHistory, name: str) -> client.V1Pod | None:
    """The Pod ``name`` once its container terminated (the watch keeps a deleted Pod's end)."""
    pod = next((p for p in history.pods() if p.metadata.name == name), None)
    return pod if pod is not None and terminated(pod) is not None else None


def test_the_workers_complete_and_worker_0_publishes_one_version(search: Search) -> None:
    search.after("replaced")

    def finished() -> dict[str, Any] | None:
        status = search.status()
        if status.get("phase") == "Failed":
            raise AssertionError(f"the TrainingJob failed: {status.get('message')}")
        return status if status.get("phase") == "Succeeded" else None

    status = wait_for(f"{NAME} Succeeded", finished, 300)
    search.timings["search: apply -> Succeeded"] = round(time.monotonic() - search.created_at, 1)
    assert status["model"]["version"] == search.version

    job = client.BatchV1Api(search.cluster.api).read_namespaced_job(
        f"{NAME}-train", search.namespace
    )
    assert (job.status.succeeded, job.status.failed) == (WORKERS, 1)
    assert job.status.completed_indexes == "0,1"

    pods = search.history.pods()
    assert [p.metadata.annotations[INDEX] for p in pods].count("1") == 2, [
        p.metadata.name for p in pods
    ]
    assert len(pods) == WORKERS + 1  # two workers and one replacement, nothing more
    assert all(p.spec.node_name == NODE_NAME for p in pods)
    assert status["attempts"] == WORKERS + 1
    finals = {
        index: search.cluster.core.read_namespaced_pod(
            search.history.of_index(index)[-1].metadata.name, search.namespace
        )
        for index in ("0", "1")
    }
    results = {}
    for index, pod in finals.items():
        assert pod.status.phase == "Succeeded", (index, pod.status)
        results[index] = search.result(pod)
        search.timings[f"search: worker {index}'s last Pod ran"] = run_seconds(pod)
    assert results["1"].get("reason") == "Searched", results["1"]
    assert "model" not in results["1"]  # only worker 0 publishes
    assert results["0"]["model"]["version"] == search.version

    assert search.store is not None
    trained = search.store / search.namespace / NAME
    assert sorted(p.name for p in trained.iterdir()) == [".search", search.version]
    assert any((trained / search.version).iterdir()), "an empty version"
    search.reached.append("succeeded")


def test_the_status_counts_the_trials_of_the_shared_study(search: Search) -> None:
    search.after("succeeded")
    found = search.status()["search"]
    assert found["strategy"] == "grid"
    assert (found["planned"], found["completed"], found["pruned"], found["failed"]) == (
        CANDIDATES,
        CANDIDATES,
        0,
        1,  # the trial lost with the deleted Pod
    )
    assert found["progress"] == f"{CANDIDATES}/{CANDIDATES}"
    assert (found["workers"], found["workersDone"]) == (WORKERS, WORKERS)

    study = search.study()
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == CANDIDATES
    best = max(t.value for t in complete if t.value is not None)
    chosen = next(t for t in complete if t.number == found["bestTrial"])
    assert chosen.value == pytest.approx(best)
    assert found["bestScore"] == pytest.approx(best)
    assert found["bestParams"] == chosen.user_attrs["params"]
    assert found["secondsPerTrial"] > 0
    search.timings["search: seconds per trial"] = round(found["secondsPerTrial"], 2)
    search.timings["search: search seconds"] = round(found["seconds"], 1)
    search.reached.append("counted")


def test_no_trial_ran_twice_and_the_lost_one_ran_again(search: Search) -> None:
    search.after("counted")
    assert search.store is not None
    assert search.victim is not None
    complete, lost = study_trials(search.store, search.namespace, NAME, search.version)
    assert complete == list(range(CANDIDATES))  # each candidate finished once
    assert lost == [1]  # one trial, the deleted Pod's

    study = search.study()
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert [t.number for t in failed] == [search.victim.trial]  # the one running at the kill
    assert "error" not in failed[0].user_attrs  # lost with its Pod, not a failed fit
    rerun = [
        t
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if t.user_attrs["candidate"] == search.victim.candidate
    ]
    assert len(rerun) == 1
    assert rerun[0].number > search.victim.trial
    by_worker: dict[int, list[int]] = {}
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        by_worker.setdefault(trial.user_attrs["worker"], []).append(trial.user_attrs["candidate"])
    assert {w: sorted(c) for w, c in by_worker.items()} == {0: [0, 2, 4], 1: [1, 3, 5]}
    search.timings["search: seconds into the trial at the deletion"] = search.victim.into_trial
