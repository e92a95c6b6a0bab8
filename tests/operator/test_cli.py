"""The `mlops` CLI: generated CRDs and manifest validation."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from mlops_operator.cli import main
from tests.corpus import EXAMPLES, INVALID


def test_crds_prints_both_definitions() -> None:
    result = CliRunner().invoke(main, ["crds"])
    assert result.exit_code == 0
    kinds = [doc["spec"]["names"]["kind"] for doc in yaml.safe_load_all(result.output)]
    assert kinds == ["TrainingJob", "ModelDeployment"]


def test_crds_writes_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["crds", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mlops.dev_modeldeployments.yaml",
        "mlops.dev_trainingjobs.yaml",
    ]


def test_validate_accepts_the_quickstart() -> None:
    result = CliRunner().invoke(main, ["validate", "-f", str(EXAMPLES / "quickstart")])
    assert result.exit_code == 0
    assert "modeldeployment/cancer valid" in result.output


def test_validate_rejects_with_one_line_naming_the_field() -> None:
    bad = INVALID / "07-model-uri-without-digest.yaml"
    result = CliRunner().invoke(main, ["validate", "-f", str(bad)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "spec.stable.model" in lines[0]
    assert "a model uri needs its digest" in lines[0]


def test_validate_names_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "-f", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "no such file" in result.output
