"""The `cluster` and `namespace` fixtures: a real control plane for tests/cluster/ (kwok's
simulated node) and tests/node/ (a real node joins it). A plugin of tests/conftest.py, so
that both layers share one control plane per session."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.node.host import BRIDGE, NODE_ADDRESS, NodeHost, missing_prerequisites

from .controlplane import ControlPlane
from .harness import BUILD_SCRIPT, Cluster, fake_node, find_binaries, node_ready, wait_for

USE_EXISTING = "MLOPS_USE_EXISTING_CLUSTER"
VERSION_KEY = pytest.StashKey[str]()
HOST_KEY = pytest.StashKey[NodeHost]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if line := terminalreporter.config.stash.get(VERSION_KEY, None):
        terminalreporter.write_sep("-", "cluster")
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """Simulated on loopback, or KUBECONFIG's cluster when MLOPS_USE_EXISTING_CLUSTER=1."""
    if os.environ.get(USE_EXISTING) == "1":
        found = _existing_cluster(tmp_path_factory.mktemp("existing-cluster"))
        _announce(request.config, found, "existing cluster")
        yield found
        return
    yield from _simulated_cluster(tmp_path_factory.mktemp("cluster"), request)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount; deleted after the test."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(f"default ServiceAccount in {name}", lambda: _has_default_sa(cluster.core, name), 30)
    yield name
    cluster.core.delete_namespace(name)


def _simulated_cluster(root: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    cache = find_binaries()
    plane = ControlPlane(cache / "bin", cache, root)
    host = None
    if _wants_real_node(request.session) and not missing_prerequisites():
        # Before the API server starts: it listens on the node's bridge, for Pods.
        host = NodeHost(root.parent / "realnode")
        host.setup()
        request.config.stash[HOST_KEY] = host
        plane.address = NODE_ADDRESS
    try:
        plane.start()
        api = config.new_client_from_config(config_file=str(plane.admin_kubeconfig))
        found = Cluster(plane.admin_kubeconfig, api, True, root, cache, plane.pki, plane)
        _add_fake_node(found)
        wait_for("default ServiceAccount", lambda: _has_default_sa(found.core, "default"), 60)
        where = "loopback" if host is None else f"{NODE_ADDRESS} (bridge {BRIDGE})"
        _announce(request.config, found, f"simulated on {where}, logs in {root}")
        yield found
        api.close()
    finally:
        plane.stop()
        if host is not None:
            host.teardown()


def real_node_host(pytest_config: pytest.Config) -> NodeHost | None:
    """The host side of the real node, when the session has real-node tests."""
    return pytest_config.stash.get(HOST_KEY, None)


def _wants_real_node(session: pytest.Session) -> bool:
    return any(item.get_closest_marker("node") for item in session.items)


def _existing_cluster(workdir: Path) -> Cluster:
    kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
    api = config.new_client_from_config(config_file=str(kubeconfig))
    return Cluster(kubeconfig, api, False, workdir, _cache_dir())


def _cache_dir() -> Path | None:
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "dir"], check=False, capture_output=True, text=True
    )
    path = Path(result.stdout.strip())
    return path if result.returncode == 0 and (path / "bin").is_dir() else None


def _add_fake_node(found: Cluster) -> None:
    node = fake_node()
    found.apply(node)
    name = node["metadata"]["name"]
    wait_for(f"node {name} Ready (kwok)", lambda: node_ready(found.core, name), 60)


def _has_default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    names = [sa.metadata.name for sa in core.list_namespaced_service_account(namespace).items]
    return "default" in names


def _announce(pytest_config: pytest.Config, found: Cluster, where: str) -> None:
    line = f"kube-apiserver {found.server_version()} ({where})"
    pytest_config.stash[VERSION_KEY] = line
    reporter = pytest_config.pluginmanager.get_plugin("terminalreporter")
    capture = pytest_config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(f"cluster: {line}")
