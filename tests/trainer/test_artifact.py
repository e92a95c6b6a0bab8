"""The artifact: reloads with skops, reproduces its metrics, is digest-pinned and stable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import skops.io as sio

from mlops_operator.api.trainingjob import Dataset, Split
from model_server.artifact import DigestMismatchError, compute_digest, read_metadata, verify
from tests.trainer.conftest import Trainer, churn_spec
from trainer import data as data_module
from trainer.evaluate import evaluate
from trainer.run import split

TRUSTED_PREFIXES = ("sklearn.", "numpy.")


def load_pipeline(artifact: Path) -> object:
    untrusted = sio.get_untrusted_types(file=artifact / "model.skops")
    assert all(name.startswith(TRUSTED_PREFIXES) for name in untrusted), untrusted
    return sio.load(artifact / "model.skops", trusted=untrusted)


def test_reloaded_model_reproduces_the_recorded_test_metrics(
    train: Trainer, churn_pvc: str
) -> None:
    run = train(churn_spec(churn_pvc))
    assert run.code == 0, run.result["message"]
    artifact = run.artifact()
    metadata = read_metadata(artifact)
    assert (artifact / "digest").read_text().strip() == run.result["model"]["digest"]
    verify(artifact, run.result["model"]["digest"])
    pipeline = load_pipeline(artifact)

    dataset = Dataset(uri=churn_pvc, target="churned")
    loaded = data_module.load(dataset)
    _, x_test, _, y_test = split(loaded, 0.25, 5, True)
    # The model server builds its frame from the metadata's feature names and dtypes.
    frame = x_test[[f.name for f in metadata.features]].astype(
        {f.name: f.dtype for f in metadata.features}
    )
    again = evaluate("classification", pipeline, frame, y_test)  # type: ignore[arg-type]
    for name, value in again.metrics.items():
        assert metadata.metrics[name] == pytest.approx(value, abs=1e-12), name
    assert metadata.classes == ["no", "yes"]
    assert metadata.task == "classification"
    assert {f.name: f.dtype for f in metadata.features}["plan"] == "object"
    assert metadata.data_digest.startswith("sha256:")
    assert metadata.versions["scikit-learn"]


def test_metadata_holds_the_data_report_importance_and_drift_baseline(
    train: Trainer, churn_pvc: str
) -> None:
    run = train(churn_spec(churn_pvc))
    metadata = json.loads((run.artifact() / "metadata.json").read_text())
    report = metadata["dataReport"]
    assert report["rows"] == 400
    assert report["missing"]["age"] > 0.05
    assert report["classBalance"] == {"no": 287, "yes": 113}
    assert set(metadata["importance"]) == {f["name"] for f in metadata["features"]}
    age = metadata["featureStats"]["age"]
    assert age["kind"] == "numeric"
    assert len(age["fractions"]) == len(age["binEdges"]) + 1
    assert sum(age["fractions"]) == pytest.approx(1.0)
    plan = metadata["featureStats"]["plan"]
    assert plan["kind"] == "categorical"
    assert set(plan["fractions"]) == {"basic", "plus", "pro"}
    read_metadata(run.artifact())  # the contract's model accepts it


def test_a_tampered_artifact_is_detected_by_its_digest(train: Trainer) -> None:
    run = train({"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}})
    artifact, digest = run.artifact(), run.result["model"]["digest"]
    metadata = json.loads((artifact / "metadata.json").read_text())
    metadata["metrics"]["accuracy"] = 1.0
    (artifact / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(DigestMismatchError):
        verify(artifact, digest)
    assert compute_digest(artifact) != digest


def test_a_swapped_model_is_detected_by_its_digest(train: Trainer) -> None:
    first = train(
        {"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}}, version="a"
    )
    second = train(
        {
            "dataset": {"builtin": "iris"},
            "model": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
        },
        version="b",
    )
    (first.artifact() / "model.skops").write_bytes((second.artifact() / "model.skops").read_bytes())
    with pytest.raises(DigestMismatchError):
        verify(first.artifact(), first.result["model"]["digest"])


def test_same_spec_data_and_seed_give_the_same_metrics_and_digest(
    tmp_path: Path, churn_pvc: str
) -> None:
    spec = churn_spec(
        churn_pvc,
        model={
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 10},
        },
    )
    runs = [Trainer(tmp_path / str(i))(spec) for i in range(2)]
    assert runs[0].result["metrics"] == runs[1].result["metrics"]
    assert runs[0].result["model"]["digest"] == runs[1].result["model"]["digest"]
    assert (runs[0].artifact() / "model.skops").read_bytes() == (
        runs[1].artifact() / "model.skops"
    ).read_bytes()


def test_a_different_seed_gives_a_different_model(train: Trainer, churn_pvc: str) -> None:
    first = train(churn_spec(churn_pvc), version="a")
    second = train(
        churn_spec(churn_pvc, split=Split(seed=6).model_dump(by_alias=True)), version="b"
    )
    assert first.result["model"]["digest"] != second.result["model"]["digest"]


def test_an_existing_version_is_never_overwritten(train: Trainer) -> None:
    spec = {"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}}
    first = train(spec)
    before = {p: p.read_bytes() for p in first.files_in_store()}
    again = train(spec)
    assert again.code == 11
    assert again.result["reason"] == "PublishFailed"
    assert "already exists" in again.result["message"]
    assert {p: p.read_bytes() for p in again.files_in_store()} == before


def test_the_version_defaults_to_a_utc_timestamp(train: Trainer) -> None:
    run = train(
        {"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}}, version=None
    )
    assert run.code == 0
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run.result["model"]["version"])


def test_the_compiled_model_is_checked_digested_and_served(train: Trainer, churn_pvc: str) -> None:
    from model_server.model import RuntimeOptions, load

    run = train(churn_spec(churn_pvc))
    assert run.code == 0, run.result["message"]
    artifact = run.artifact()
    check = read_metadata(artifact).onnx
    assert check is not None
    assert check.verified, check.reason
    assert check.labels_equal
    assert check.max_abs_diff is not None
    assert check.max_abs_diff <= check.tolerance
    assert check.input_type == "double"
    assert run.result["onnx"] == {
        "verified": True,
        "rows": check.rows,
        "labelsEqual": True,
        "maxAbsDiff": pytest.approx(check.max_abs_diff, rel=1e-5, abs=1e-12),
        "tolerance": check.tolerance,
    }
    digest = run.result["model"]["digest"]
    assert compute_digest(artifact) == digest
    assert load(str(artifact), digest).runtime_name == "onnx"
    assert load(str(artifact), digest, options=RuntimeOptions("sklearn")).runtime_name == "sklearn"
    (artifact / "model.onnx").write_bytes(b"not the model")
    with pytest.raises(DigestMismatchError):
        verify(artifact, digest)


def test_an_unconvertible_model_is_published_without_onnx_and_says_why(
    train: Trainer, churn_pvc: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = churn_spec(churn_pvc)
    spec["model"] = {"estimator": "sklearn.semi_supervised.LabelPropagation", "params": {}}
    run = train(spec)
    assert run.code == 0, run.result["message"]
    assert run.result["phase"] == "Succeeded"
    assert run.result["onnx"]["verified"] is False
    assert "skl2onnx cannot convert it" in run.result["onnx"]["reason"]
    artifact = run.artifact()
    assert not (artifact / "model.onnx").exists()
    check = read_metadata(artifact).onnx
    assert check is not None
    assert not check.verified
    assert check.reason.startswith(run.result["onnx"]["reason"].rstrip("…"))
    assert "warning: published without model.onnx: double: skl2onnx" in capsys.readouterr().err
