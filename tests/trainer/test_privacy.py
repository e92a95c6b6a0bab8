"""Privacy: dropped and hashed columns, the PII scan and its gate, differential privacy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_operator.api.trainingjob import Privacy
from mlops_operator.api.workload import ExitCode
from trainer import privacy
from trainer.errors import InvalidSpecError

from .conftest import CHURN_CSV, Trainer

EMAILS = [f"person{i}@example.org" for i in range(40)]
CARD = "4111 1111 1111 1111"  # a test Visa number: Luhn-valid


def test_luhn() -> None:
    assert privacy.luhn("4111111111111111")
    assert privacy.luhn("79927398713")
    assert not privacy.luhn("4111111111111112")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("ann.smith+news@mail.example.com", "email"),
        ("write to bob@example.org today", "email"),
        ("+44 20 7946 0958", "phone"),
        ("(555) 123-4567", "phone"),
        (CARD, "card_number"),
        ("5500-0000-0000-0004", "card_number"),
        ("078-05-1120", "national_id"),
        ("AB 12 34 56 C", "national_id"),
        ("4111 1111 1111 1112", None),  # Luhn fails
        ("2026-12-02", None),
        ("basic", None),
        ("42.5", None),
    ],
)
def test_kinds(value: str, kind: str | None) -> None:
    assert privacy.kind_of(value) == kind


def test_scan_names_columns_and_counts_never_values() -> None:
    frame = pd.DataFrame(
        {
            "contact": EMAILS,
            "card": [CARD] * 40,
            "plan": ["basic", "plus"] * 20,
            "spend": np.linspace(1, 100, 40),
            "card_int": [4111111111111111.0] * 40,
        }
    )
    findings = privacy.scan(frame, keep=["card"])
    kinds = {f.column: (f.kind, f.matches, f.kept) for f in findings}
    assert kinds == {
        "contact": ("email", 40, False),
        "card": ("card_number", 40, True),
        "card_int": ("card_number", 40, False),
    }
    assert [f.column for f in privacy.blocking(findings)] == ["card_int", "contact"]
    assert "example.org" not in json.dumps([f.to_json() for f in findings])


def test_hash_is_salted_stable_and_keeps_missing() -> None:
    a = privacy.hash_value("alice@example.org", b"salt-1")
    assert a == privacy.hash_value("alice@example.org", b"salt-1")
    assert a != privacy.hash_value("alice@example.org", b"salt-2")
    assert len(a) == privacy.HASH_DIGITS
    assert "alice" not in a
    assert np.isnan(privacy.hash_value(float("nan"), b"s"))


def test_protect_drops_and_hashes() -> None:
    frame = pd.DataFrame({"email": EMAILS[:3], "name": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    rules = Privacy(drop=["name"], hash=["email"])
    out = privacy.protect(frame, rules, b"pepper")
    assert list(out.columns) == ["email", "x"]
    assert not out["email"].str.contains("@").any()
    with pytest.raises(InvalidSpecError, match="needs a salt"):
        privacy.protect(frame, rules, None)
    with pytest.raises(InvalidSpecError, match="no column"):
        privacy.protect(frame, Privacy(drop=["nope"]), None)


def test_salt_from_env_or_file(tmp_path: Path) -> None:
    salt = tmp_path / "salt"
    salt.write_text("from-a-file\n")
    assert privacy.salt_from_env({"MLOPS_PRIVACY_SALT": "s"}) == b"s"
    assert privacy.salt_from_env({"MLOPS_PRIVACY_SALT_FILE": str(salt)}) == b"from-a-file"
    assert privacy.salt_from_env({}) is None


def test_contradictions_are_invalid_specs() -> None:
    with pytest.raises(InvalidSpecError, match="both dropped and hashed"):
        privacy.check(Privacy(drop=["a"], hash=["a"]), "y", None)
    with pytest.raises(InvalidSpecError, match="target"):
        privacy.check(Privacy(drop=["y"]), "y", None)


@pytest.fixture
def personal_csv(tmp_path: Path) -> Path:
    frame = pd.read_csv(CHURN_CSV)
    rows = len(frame)
    frame["full_name"] = [f"Zebulon Quixote{i}" for i in range(rows)]
    frame["email"] = [f"zq{i}@private.example" for i in range(rows)]
    path = tmp_path / "personal.csv"
    frame.to_csv(path, index=False)
    return path


def test_dropped_and_hashed_columns_leave_no_raw_value_behind(
    train: Trainer,
    personal_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLOPS_PRIVACY_SALT", "a-salt")
    spec = {
        "dataset": {"uri": f"file://{personal_csv}", "target": "churned"},
        "model": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 10},
        },
        "privacy": {"drop": ["full_name"], "hash": ["email"], "piiGate": "fail"},
    }
    run = train(spec)
    assert run.code == 0, run.result
    artifact = run.artifact()
    assert (artifact / "report.html").is_file()
    assert run.result["report"].endswith("/report.html")
    logs = capsys.readouterr().err + run.stdout + json.dumps(run.result)
    raw = pd.read_csv(personal_csv)
    for path in [p for p in artifact.rglob("*") if p.is_file()]:
        content = path.read_bytes()
        for value in (
            *raw["full_name"].head(50),
            *raw["email"].head(50),
            "Quixote",
            "private.example",
        ):
            assert value.encode() not in content, f"{value} in {path.name}"
    for value in ("Quixote", "private.example"):
        assert value not in logs
    meta = json.loads((artifact / "metadata.json").read_text())
    names = [f["name"] for f in meta["features"]]
    assert "full_name" not in names
    assert "email" in names
    assert meta["dataReport"]["privacy"]["dropped"] == ["full_name"]
    assert meta["dataReport"]["privacy"]["hashed"] == ["email"]


def test_the_pii_gate_fails_a_run_on_personal_data(train: Trainer, personal_csv: Path) -> None:
    spec = {
        "dataset": {"uri": f"file://{personal_csv}", "target": "churned"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "privacy": {"drop": ["full_name"], "piiGate": "fail"},
    }
    run = train(spec)
    assert run.code == ExitCode.PRIVACY_GATE_FAILED
    assert run.result["reason"] == "PrivacyGateFailed"
    assert "'email' looks like email" in run.result["message"]
    assert "private.example" not in json.dumps(run.result)
    assert not run.files_in_store()
    spec["privacy"]["keep"] = ["email"]  # declared fine: the run goes on
    assert train(spec, version="v2").code == 0


def test_a_differentially_private_run_records_its_epsilon(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "iris"},
        "model": {
            "estimator": "diffprivlib.models.GaussianNB",
            "params": {"bounds": [[-3, -3, -3, -3], [3, 3, 3, 3]]},
        },
        "privacy": {"differentialPrivacy": {"epsilon": 2.0}},
    }
    run = train(spec)
    assert run.code == 0, run.result
    assert run.result["privacy"]["epsilon"] == 2.0
    assert run.result["privacy"]["spent"] == {"epsilon": 2.0, "delta": 0.0}
    meta = json.loads((run.artifact() / "metadata.json").read_text())
    assert meta["privacy"]["spent"]["epsilon"] == 2.0
    assert meta["params"]  # a plain scikit-learn GaussianNB was published
    skops = (run.artifact() / "model.skops").read_bytes()
    assert b"diffprivlib" not in skops


def test_differential_privacy_allows_only_diffprivlib_and_no_search(train: Trainer) -> None:
    base = {"dataset": {"builtin": "iris"}, "privacy": {"differentialPrivacy": {"epsilon": 1}}}
    run = train({**base, "model": {"estimator": "sklearn.naive_bayes.GaussianNB"}})
    assert run.result["reason"] == "EstimatorNotAllowed"
    assert "diffprivlib.models.GaussianNB" in run.result["message"]
    run = train(
        {
            **base,
            "model": {"estimator": "diffprivlib.models.GaussianNB"},
            "search": {"params": {"var_smoothing": [1e-9, 1e-8]}},
        }
    )
    assert run.result["reason"] == "BadParams"
