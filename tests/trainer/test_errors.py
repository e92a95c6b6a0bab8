"""Every user error: one line naming the problem, its own exit code, nothing in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import CHURN_CSV, Trainer, churn_spec


def assert_clean_failure(train: Trainer, spec: dict[str, Any], code: int, *words: str) -> None:
    run = train(spec)
    result = run.result
    assert run.code == code, result["message"]
    assert result["phase"] == "Failed"
    assert result["exitCode"] == code
    assert "\n" not in result["message"]
    for word in words:
        assert word in result["message"], result["message"]
    assert "model" not in result
    assert run.files_in_store() == []
    assert run.stdout.splitlines()[0].startswith("Failed: ")


def test_missing_column(train: Trainer, churn_pvc: str) -> None:
    spec = churn_spec(churn_pvc, dataset={"uri": churn_pvc, "target": "cancelled"})
    assert_clean_failure(train, spec, 5, "cancelled", "churned")


def test_missing_feature_column(train: Trainer, churn_pvc: str) -> None:
    spec = churn_spec(
        churn_pvc, dataset={"uri": churn_pvc, "target": "churned", "features": ["age", "zip"]}
    )
    assert_clean_failure(train, spec, 5, "zip")


def test_unreadable_uri(train: Trainer, tmp_path: Path) -> None:
    spec = churn_spec(f"file://{tmp_path}/nowhere.csv")
    assert_clean_failure(train, spec, 3, "nowhere.csv", "no such file")


def test_unreadable_pvc_claim(train: Trainer, churn_pvc: str) -> None:
    assert_clean_failure(train, churn_spec("pvc://other-claim/churn.csv"), 3, "other-claim")


def test_unsupported_scheme(train: Trainer) -> None:
    assert_clean_failure(train, churn_spec("gopher://host/churn.csv"), 3, "gopher")


def test_malformed_csv(train: Trainer, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('a,b,churned\n1,2,yes\n3,4,no,5,6\n"unterminated,7\n')
    assert_clean_failure(train, churn_spec(f"file://{path}"), 4, "bad.csv", "not a valid csv")


def test_malformed_parquet(train: Trainer, tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(CHURN_CSV.read_bytes())
    assert_clean_failure(
        train, churn_spec(f"file://{path}"), 4, "bad.parquet", "not a valid parquet"
    )


def test_empty_file(train: Trainer, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert_clean_failure(train, churn_spec(f"file://{path}"), 6, "empty")


def test_header_only(train: Trainer, tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("age,plan,churned\n")
    assert_clean_failure(train, churn_spec(f"file://{path}"), 6, "no rows")


def test_no_labelled_rows(train: Trainer, tmp_path: Path) -> None:
    path = tmp_path / "unlabelled.csv"
    path.write_text("age,plan,churned\n1,a,\n2,b,\n")
    assert_clean_failure(train, churn_spec(f"file://{path}"), 6, "churned")


@pytest.mark.parametrize(
    ("estimator", "words"),
    [
        ("os.system", ("os.system", "allow-list")),
        ("sklearn.cluster.KMeans", ("KMeans", "not a classifier or regressor")),
        ("sklearn.ensemble.NoSuchForest", ("no such estimator",)),
        ("sklearn.utils._testing.MinimalClassifier", ("allow-list",)),
        ("subprocess.Popen", ("allow-list",)),
    ],
)
def test_disallowed_estimator(train: Trainer, estimator: str, words: tuple[str, ...]) -> None:
    spec = {"dataset": {"builtin": "iris"}, "model": {"estimator": estimator}}
    assert_clean_failure(train, spec, 7, *words)


def test_estimator_of_the_wrong_task(train: Trainer) -> None:
    spec = {"dataset": {"builtin": "diabetes"}, "model": {"estimator": "sklearn.svm.SVC"}}
    assert_clean_failure(train, spec, 7, "classification", "regression")


def test_unknown_param(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "iris"},
        "model": {"estimator": "sklearn.svm.SVC", "params": {"gama": 1}},
    }
    assert_clean_failure(train, spec, 8, "gama", "gamma")


def test_invalid_param_value(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "iris"},
        "model": {"estimator": "sklearn.svm.SVC", "params": {"kernel": "banana"}},
    }
    assert_clean_failure(train, spec, 8, "kernel")


def test_unknown_search_param(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "iris"},
        "model": {"estimator": "sklearn.svm.SVC"},
        "search": {"params": {"depth": [1, 2]}, "cv": 2},
    }
    assert_clean_failure(train, spec, 8, "search.params", "depth")


def test_invalid_search_values(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "iris"},
        "model": {"estimator": "sklearn.svm.SVC"},
        "search": {"params": {"C": [-1.0, -2.0]}, "cv": 2},
    }
    assert_clean_failure(train, spec, 8, "C")


def test_unknown_scorer(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "iris"},
        "model": {"estimator": "sklearn.svm.SVC"},
        "search": {"params": {"C": [1.0]}, "scoring": "happiness", "cv": 2},
    }
    assert_clean_failure(train, spec, 8, "happiness")


def test_invalid_spec(train: Trainer) -> None:
    spec = {"dataset": {"builtin": "iris", "uri": "file:///x.csv"}, "model": {"estimator": "x"}}
    assert_clean_failure(train, spec, 2, "dataset")


def test_unknown_gate_metric(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "iris"},
        "model": {"estimator": "sklearn.svm.SVC"},
        "qualityGate": {"min": {"happiness": 1}},
    }
    assert_clean_failure(train, spec, 2, "unknown metric")


def test_unwritable_store(train: Trainer, tmp_path: Path) -> None:
    blocker = tmp_path / "store" / "team-a"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the namespace directory should be")
    spec = {"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}}
    run = train(spec)
    assert run.code == 11
    assert "cannot write" in run.result["message"]
    assert run.files_in_store() == [blocker]


def test_a_missing_pvc_file_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer.data import read_bytes
    from trainer.errors import DataUnreadableError

    monkeypatch.setenv("MLOPS_PVC_ROOT", str(tmp_path))
    with pytest.raises(DataUnreadableError) as raised:
        read_bytes("pvc://mlops-data/churn.csv")
    assert f"looked at {tmp_path}/mlops-data/churn.csv" in str(raised.value)
    assert "$MLOPS_PVC_ROOT" in str(raised.value)
