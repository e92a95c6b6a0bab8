"""Options for the whole suite."""

from __future__ import annotations

import os

import pytest


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
