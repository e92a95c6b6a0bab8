"""What the operator's server-side apply relies on, on the real API server: an apply naming
a uid lands only on the object of that uid. It creates nothing (so a new child is read
before its first apply), and an object of the same name with another uid (a user's, made
after the operator's child went) is refused and left as it is (kube.Replaced, which the
children's apply turns into a read and a NameClash)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_operator import kube

from .harness import Cluster


@pytest.fixture
def api(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The operator's client, talking to the test cluster (as its admin)."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setattr(kube, "_api", None)
    kube.configure()
    yield
    kube.api().close()


def config_map(namespace: str, value: str, uid: str | None = None) -> dict[str, Any]:
    meta = {"name": "child", "namespace": namespace, **({"uid": uid} if uid else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": value}}


def stored(namespace: str) -> dict[str, Any] | None:
    return kube.get(kube.kind("ConfigMap"), namespace, "child")


@pytest.mark.usefixtures("api")
def test_an_apply_naming_a_uid_creates_nothing(namespace: str) -> None:
    with pytest.raises(kube.Replaced) as refused:
        kube.apply(config_map(namespace, "1", uid=str(uuid.uuid4())))
    assert refused.value.status == 409
    assert "uid mismatch" in refused.value.detail
    assert stored(namespace) is None


@pytest.mark.usefixtures("api")
def test_an_apply_naming_another_uid_leaves_the_object_alone(namespace: str) -> None:
    users = kube.apply(config_map(namespace, "users"))  # no uid: created
    with pytest.raises(kube.Replaced) as refused:
        kube.apply(config_map(namespace, "ours", uid=str(uuid.uuid4())))
    assert refused.value.status == 422
    assert "metadata.uid" in refused.value.detail
    assert (stored(namespace) or {}).get("data") == {"v": "users"}
    onto = kube.apply(config_map(namespace, "again", uid=users["metadata"]["uid"]))
    assert onto["data"] == {"v": "again"}
    assert onto["metadata"]["uid"] == users["metadata"]["uid"]
