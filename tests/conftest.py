"""Options for the whole suite."""

from __future__ import annotations

import os

import pytest

# The `cluster` and `namespace` fixtures, one control plane for tests/cluster/ and tests/node/.
pytest_plugins = ["tests.cluster.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--use-existing-cluster",
        action="store_true",
        help="Run tests/cluster against KUBECONFIG's cluster instead of a simulated one "
        "(the same as MLOPS_USE_EXISTING_CLUSTER=1).",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--use-existing-cluster"):
        os.environ["MLOPS_USE_EXISTING_CLUSTER"] = "1"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-node tests last: the node, once up, keeps Pods off kwok's node (a taint)."""
    items.sort(key=lambda item: item.get_closest_marker("node") is not None)
