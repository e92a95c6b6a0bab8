"""The `node` fixture: one real node (tests/node/realnode.py) joined to the session's control
plane; every test here is marked `node`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.fixtures import USE_EXISTING, real_node_host
from tests.cluster.harness import Cluster, find_binaries

from .host import missing_prerequisites
from .realnode import RealNode, node_binaries

HERE = Path(__file__).parent
NODE_KEY = pytest.StashKey[RealNode]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.node)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if node := terminalreporter.config.stash.get(NODE_KEY, None):
        terminalreporter.write_sep("-", "real node")
        terminalreporter.write_line(
            "started: " + ", ".join(f"{what} {s:.1f}s" for what, s in node.timings.items())
        )
        if node.e2e_timings:
            terminalreporter.write_line(
                "quickstart: " + ", ".join(f"{w} {s:.1f}s" for w, s in node.e2e_timings.items())
            )
        terminalreporter.write_line(f"logs in {node.root}")


@pytest.fixture(scope="session")
def node(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[RealNode]:
    """kubelet, containerd, kube-proxy and CoreDNS on this machine, registered as a Node."""
    if os.environ.get(USE_EXISTING) == "1":
        pytest.skip("an existing cluster has its own nodes")
    host = real_node_host(request.config)
    if host is None:
        pytest.skip(f"no real node on this machine: it needs {', '.join(missing_prerequisites())}")
    assert cluster.pki is not None
    real = RealNode(cluster, cluster.pki, host, find_binaries() / "bin", node_binaries(), host.root)
    real.start()
    request.config.stash[NODE_KEY] = real
    try:
        yield real
    finally:
        real.stop()
