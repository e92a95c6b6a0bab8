"""Marks tests/cluster/ `cluster`; the fixtures are in fixtures.py (a plugin of
tests/conftest.py, shared with tests/node/)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)
