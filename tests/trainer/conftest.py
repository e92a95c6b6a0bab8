"""Helpers for the trainer tests: run `mlops train` in-process on real data, into tmp_path."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import ROOT
from trainer.main import main

CHURN_CSV = ROOT / "examples" / "data" / "churn.csv"


@dataclass
class Run:
    code: int
    result: dict[str, Any]
    stdout: str
    store: Path

    def artifact(self) -> Path:
        model = self.result["model"]
        return self.store / self.result["namespace"] / self.result["name"] / model["version"]

    def files_in_store(self) -> list[Path]:
        return sorted(p for p in self.store.rglob("*") if p.is_file())


@dataclass
class Trainer:
    tmp_path: Path

    @property
    def store(self) -> Path:
        return self.tmp_path / "store"

    def __call__(
        self, spec: dict[str, Any], name: str = "job", version: str | None = "v1", **kwargs: Any
    ) -> Run:
        self.store.mkdir(parents=True, exist_ok=True)
        termination = self.tmp_path / "termination-log"
        out = io.StringIO()
        code = main(
            spec_json=json.dumps(spec),
            name=name,
            namespace="team-a",
            store=kwargs.pop("store", f"file://{self.store}"),
            version=version,
            termination_log=str(termination),
            out=out,
            **kwargs,
        )
        text = termination.read_text()
        assert len(text.encode()) <= 4096
        return Run(code=code, result=json.loads(text), stdout=out.getvalue(), store=self.store)


@pytest.fixture
def train(tmp_path: Path) -> Trainer:
    return Trainer(tmp_path)


@pytest.fixture
def churn_pvc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The churn CSV on a "mounted" claim: its pvc:// URI."""
    root = tmp_path / "pvc"
    (root / "data").mkdir(parents=True)
    shutil.copy(CHURN_CSV, root / "data" / "churn.csv")
    monkeypatch.setenv("MLOPS_PVC_ROOT", str(root))
    return "pvc://data/churn.csv"


def churn_spec(uri: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "dataset": {"uri": uri, "target": "churned"},
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 300},
        },
        "split": {"testSize": 0.25, "seed": 5},
    }
    spec.update(overrides)
    return spec
