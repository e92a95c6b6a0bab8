"""The kind flow (it needs Docker, so it does not run here): config and scripts are sound."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .tools import REPO

SCRIPTS = [*sorted((REPO / "hack").glob("kind-*.sh")), REPO / "hack" / "quickstart.sh"]


def test_kind_config_pins_its_node_image() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    images = [node["image"] for node in config["nodes"]]
    assert all(re.fullmatch(r"kindest/node:v1\.\d+\.\d+(@sha256:[0-9a-f]{64})?", i) for i in images)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_strict(path: Path) -> None:
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert "set -euo pipefail" in path.read_text()
    assert path.stat().st_mode & 0o111, f"{path.name} is not executable"


def test_quickstart_waits_for_the_promotion() -> None:
    """kind runs the steps of hack/quickstart.sh, the ones the real-node tests run in CI."""
    steps = (REPO / "hack" / "quickstart.sh").read_text()
    assert "--for=jsonpath='{.status.phase}'=Promoted mdep/cancer" in steps
    assert "examples/quickstart/" in steps
    assert 'upgrade --install "$RELEASE" charts/mlops-operator' in steps
    text = (REPO / "hack" / "kind-quickstart.sh").read_text()
    assert "hack/quickstart.sh apply trained serving load promoted" in text
    up = (REPO / "hack" / "kind-up.sh").read_text()
    assert "kind create cluster" in up
    assert "--config kind-config.yaml" in up
    assert "kind load docker-image" in up
    assert "hack/quickstart.sh install" in up


def test_makefile_has_the_kind_targets() -> None:
    makefile = (REPO / "Makefile").read_text()
    for target in ("kind-up", "kind-quickstart", "kind-down"):
        assert re.search(rf"^{target}:", makefile, re.M), target
