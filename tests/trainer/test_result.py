"""The result JSON: its shape and its 4 KiB bound."""

from __future__ import annotations

import json

from mlops_operator.api.workload import (
    MAX_BYTES,
    DataSummary,
    GateFailure,
    PublishedModel,
    TrainingResult,
)


def big_result() -> TrainingResult:
    return TrainingResult(
        phase="Succeeded",
        reason="Trained",
        exit_code=0,
        message="accuracy=0.9; " + "x" * 2000,
        name="job",
        namespace="ns",
        task="classification",
        score="accuracy=0.9",
        metrics={"accuracy": 0.91234567891, "cv_mean": float("nan")},
        best_params={"alpha": 1.0, "hidden": list(range(100))},
        model=PublishedModel(
            uri="s3://models/ns/job/v1", digest="sha256:" + "a" * 64, version="v1"
        ),
        gate_failures=[
            GateFailure(
                metric=f"missing:col{i}", bound="max", threshold=0.1, actual=0.5, missed_by=0.4
            )
            for i in range(100)
        ],
        data=DataSummary(
            rows=10,
            duplicates=0,
            max_missing_fraction=0.5,
            class_balance={str(i): i for i in range(100)},
        ),
        importance={f"pixel_{i}": 0.001 * i for i in range(64)},
        confusion_matrix={"labels": list(range(10)), "matrix": [[100] * 10] * 10},
        warnings=["ConvergenceWarning: " + "y" * 250] * 10,
    )


def test_the_termination_message_is_bounded_valid_json() -> None:
    text = big_result().to_termination_message()
    assert len(text.encode()) <= MAX_BYTES
    document = json.loads(text)
    assert document["phase"] == "Succeeded"
    assert document["model"]["digest"] == "sha256:" + "a" * 64
    assert document["metrics"] == {"accuracy": 0.912346, "cv_mean": None}
    assert document["score"] == "accuracy=0.9"


def test_detail_is_dropped_only_when_needed() -> None:
    small = TrainingResult(
        phase="Failed",
        reason="BadParams",
        exit_code=8,
        message="unknown parameter(s) gama",
        confusion_matrix={"labels": [0, 1], "matrix": [[1, 0], [0, 1]]},
    )
    document = json.loads(small.to_termination_message())
    assert document["confusionMatrix"]["matrix"] == [[1, 0], [0, 1]]
    assert document["exitCode"] == 8


def test_the_result_round_trips_through_its_model() -> None:
    text = big_result().to_termination_message()
    parsed = TrainingResult.model_validate_json(text)
    assert parsed.model is not None
    assert parsed.model.version == "v1"


def test_the_onnx_check_survives_the_bound() -> None:
    from mlops_operator.api.trainingjob import CompiledModel

    result = big_result()
    result.onnx = CompiledModel(verified=False, reason="double: " + "z" * 5000, rows=30)
    text = result.to_termination_message()
    assert len(text.encode()) <= MAX_BYTES
    document = json.loads(text)
    assert document["onnx"]["verified"] is False
    assert len(document["onnx"].get("reason", "")) <= 300
    verified = big_result()
    verified.onnx = CompiledModel(verified=True, rows=30, max_abs_diff=1.2e-7, tolerance=1e-5)
    assert json.loads(verified.to_termination_message())["onnx"]["maxAbsDiff"] == 1.2e-7
