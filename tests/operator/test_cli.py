"""The `mlops` CLI: generated CRDs and manifest validation."""

from __future__ import annotations

from pathlib import Path

import pytest
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


TRAININGJOB = """
apiVersion: mlops.dev/v1alpha1
kind: TrainingJob
metadata: {name: churn}
spec:
  dataset: {uri: DATA, target: TARGET}
  model:
    estimator: ESTIMATOR
    params: {PARAM: 10}
"""


def validate_one(tmp_path: Path, **fill: str) -> tuple[int, str]:
    values = {
        "DATA": str(EXAMPLES / "data" / "churn.csv"),
        "TARGET": "churned",
        "ESTIMATOR": "sklearn.ensemble.RandomForestClassifier",
        "PARAM": "n_estimators",
        **fill,
    }
    text = TRAININGJOB
    for key, value in values.items():
        text = text.replace(key, value)
    manifest = tmp_path / "tj.yaml"
    manifest.write_text(text)
    result = CliRunner().invoke(main, ["validate", "-f", str(manifest)])
    return result.exit_code, result.output


def test_validate_checks_what_a_training_run_would(tmp_path: Path) -> None:
    assert validate_one(tmp_path) == (0, "trainingjob/churn valid\n")
    code, out = validate_one(tmp_path, ESTIMATOR="sklearn.ensemble.RandomForestClasifier")
    assert code == 1
    assert "spec.model.estimator" in out
    assert "did you mean sklearn.ensemble.RandomForestClassifier?" in out
    code, out = validate_one(tmp_path, PARAM="n_estimator")
    assert code == 1
    assert "spec.model.params.n_estimator: not a parameter of RandomForestClassifier" in out
    assert "did you mean n_estimators?" in out
    code, out = validate_one(tmp_path, TARGET="churn")
    assert code == 1
    assert "no column(s) churn" in out
    missing = tmp_path / "nope.csv"
    code, out = validate_one(tmp_path, DATA=str(missing))
    assert code == 1
    assert f"spec.dataset.uri: dataset {missing}: no such file" in out


def test_validate_words_an_unknown_field_as_the_api_server_does(tmp_path: Path) -> None:
    manifest = tmp_path / "tj.yaml"
    manifest.write_text(
        (EXAMPLES / "quickstart" / "01-trainingjob-v1.yaml").read_text()
        + "  preprocessing:\n    scalling: standard\n"
    )
    result = CliRunner().invoke(main, ["validate", "-f", str(manifest)])
    assert result.exit_code == 1
    assert 'unknown field "spec.preprocessing.scalling"' in result.output


def test_validate_leaves_an_unmounted_claim_to_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_PVC_ROOT", str(tmp_path / "pvc"))
    assert validate_one(tmp_path, DATA="pvc://mlops-data/churn.csv")[0] == 0
    (tmp_path / "pvc" / "mlops-data").mkdir(parents=True)  # mounted here, without the file
    code, out = validate_one(tmp_path, DATA="pvc://mlops-data/churn.csv")
    assert code == 1
    assert "looked at" in out


def test_validate_refuses_a_duplicate_key_naming_it_and_its_line(tmp_path: Path) -> None:
    manifest = tmp_path / "tj.yaml"
    manifest.write_text(
        "apiVersion: mlops.dev/v1alpha1\nkind: TrainingJob\nmetadata: {name: twice}\nspec:\n"
        "  dataset: {builtin: iris}\n  model:\n"
        "    estimator: sklearn.linear_model.LogisticRegression\n"
        "    estimator: sklearn.ensemble.RandomForestClassifier\n"
    )
    result = CliRunner().invoke(main, ["validate", "-f", str(manifest)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {manifest}: cannot read manifest: duplicate key 'estimator' on line 8 "
        "(first on line 7)"
    ]
