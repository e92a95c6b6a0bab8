"""Open Inference Protocol v2 (REST) types, plus the feedback extension.

These models document the wire format (the OpenAPI document is generated from them) and are
used where speed does not matter. The infer hot path decodes with orjson and the checks in
:mod:`model_server.codec`, which enforce the same shapes with messages that name the problem.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
DATATYPES: tuple[str, ...] = Datatype.__args__  # type: ignore[attr-defined]

Parameters = dict[str, Any]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorResponse(_Model):
    error: str = Field(description="What is wrong, naming the offending field or value.")


class ServerLiveResponse(_Model):
    live: bool


class ServerReadyResponse(_Model):
    ready: bool


class ModelReadyResponse(_Model):
    name: str
    ready: bool


class ServerMetadataResponse(_Model):
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(_Model):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 stands for a variable dimension.")
    parameters: Parameters | None = None


class ModelMetadataResponse(_Model):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: Parameters | None = None


class RequestInput(_Model):
    name: str = Field(
        description="A feature name (one input per feature, shape [N] or [N, 1]), or any name "
        "for a single input holding all features, shape [N, F] (or [F] for one row)."
    )
    shape: list[int] = Field(description="Non-negative dimensions; their product is len(data).")
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] = Field(description="Row-major values, flat or nested as the shape.")


class RequestOutput(_Model):
    name: Literal["predict", "predict_proba"] = Field(
        description="predict: the predictions; predict_proba: class probabilities (classifiers)."
    )
    parameters: Parameters | None = None


class InferenceRequest(_Model):
    id: str | None = Field(
        default=None, description="Echoed in the response; generated when absent."
    )
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(
        default=None, description="Outputs wanted; default: predict only."
    )


class ResponseOutput(_Model):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any]


class InferenceResponse(_Model):
    model_name: str
    model_version: str | None = None
    id: str = Field(description="The request's id, or a generated one: use it for feedback.")
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class FeedbackRequest(BaseModel):
    """Ground truth for an earlier inference request, row for row."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="The `id` of the earlier infer response.")
    truth: list[Any] = Field(
        min_length=1, description="The true target of each row of that request, in order."
    )


class FeedbackResponse(_Model):
    id: str
    correct: int = Field(description="Rows whose prediction matched (classifiers).")
    incorrect: int = Field(description="Rows whose prediction did not match (classifiers).")
    absolute_error: float | None = Field(
        default=None, description="Sum of absolute errors of the rows (regressors)."
    )


class RowExplanation(_Model):
    output: list[float] = Field(
        description="The model's output per target, in the space named by `output`."
    )
    attributions: dict[str, list[float]] = Field(
        description="Per input feature, its contribution to each target: for every target, "
        "expected_value + the sum over features == output."
    )


class ExplainResponse(_Model):
    """The model_explain extension: shap attributions for each row of an infer request."""

    model_name: str
    model_version: str | None = None
    id: str
    explainer: Literal["tree", "linear", "permutation"] = Field(
        description="tree and linear are exact; permutation is model-agnostic, within the "
        "server's sample budget."
    )
    output: Literal["probability", "margin", "prediction"] = Field(
        description="What the attributions add up to: class probabilities, the margin "
        "(log-odds or decision function) or the regression prediction."
    )
    targets: list[Any] = Field(
        description="The output dimensions: class labels (a binary margin: the positive "
        "class), or the regression target's name."
    )
    features: list[str]
    expected_value: list[float] = Field(description="The output at the background, per target.")
    explanations: list[RowExplanation] = Field(description="One per row, in request order.")
