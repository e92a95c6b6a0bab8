"""A parallel search's TrainingJob as its tests make and read it, on the simulated node
(tests/cluster/test_trainingjob_search.py plays the containers) and on the real one
(tests/node/test_search.py): the manifest, its worker Pods by index, the shared study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from kubernetes import client
from optuna.storages.journal import JournalFileBackend, JournalStorage

from .harness import Cluster
from .trainer_pods import INDEX

GROUP, VERSION, PLURAL = "mlops.dev", "v1alpha1", "trainingjobs"
LABEL = "mlops.dev/trainingjob"


def trainingjob(name: str, search: dict[str, Any]) -> dict[str, Any]:
    """A 20-tree forest on digits, searched as ``search`` says; one retry per worker."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "dataset": {"builtin": "digits"},
            "model": {
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 20},
            },
            "search": search,
            "backoffLimit": 1,
        },
    }


def pods(cluster: Cluster, namespace: str, name: str) -> list[client.V1Pod]:
    """The TrainingJob's Pods, oldest first."""
    found = cluster.core.list_namespaced_pod(namespace, label_selector=f"{LABEL}={name}")
    return sorted(found.items, key=lambda p: p.metadata.creation_timestamp)


def running(cluster: Cluster, namespace: str, name: str, index: str) -> client.V1Pod | None:
    """The Running Pod of worker ``index``, if any."""
    live = [
        p
        for p in pods(cluster, namespace, name)
        if p.status.phase == "Running" and p.metadata.annotations.get(INDEX) == index
    ]
    return live[0] if live else None


def status_of(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return dict(body.get("status") or {})


def journal(store: Path, namespace: str, name: str, version: str) -> Path:
    """The shared study's journal file in the model store (``store``: the claim's root)."""
    return store / namespace / name / ".search" / f"{version}.journal"


def shared_study(store: Path, namespace: str, name: str, version: str) -> optuna.Study:
    """The study the workers share, read from its journal (which must exist: opening a
    missing one would create it, as this process's user)."""
    path = journal(store, namespace, name, version)
    if not path.exists():
        raise FileNotFoundError(path)
    return optuna.load_study(
        study_name=f"{namespace}/{name}/{version}",
        storage=JournalStorage(JournalFileBackend(str(path))),
    )


def study_trials(
    store: Path, namespace: str, name: str, version: str
) -> tuple[list[int], list[int]]:
    """From the study in the model store (``store``: the claim's root): the candidates of the
    complete trials, sorted, and the workers of the failed ones."""
    study = shared_study(store, namespace, name, version)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    lost = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    return sorted(t.user_attrs["candidate"] for t in complete), [
        t.user_attrs["worker"] for t in lost
    ]
