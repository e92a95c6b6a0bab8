"""The OpenAPI document of the server, generated from the protocol types.

``python -m model_server.openapi > model_server/openapi.json`` regenerates the committed copy;
a test fails when they differ.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from model_server import __version__, protocol

SCHEMAS: list[type[BaseModel]] = [
    protocol.ErrorResponse,
    protocol.ServerLiveResponse,
    protocol.ServerReadyResponse,
    protocol.ServerMetadataResponse,
    protocol.ModelReadyResponse,
    protocol.ModelMetadataResponse,
    protocol.InferenceRequest,
    protocol.InferenceResponse,
    protocol.FeedbackRequest,
    protocol.FeedbackResponse,
    protocol.ExplainResponse,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(protocol.ErrorResponse)}


def _operation(
    summary: str,
    ok: type[BaseModel] | None,
    errors: dict[str, str],
    *,
    body: type[BaseModel] | None = None,
    ok_description: str = "OK",
    params: list[str] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {}}
    if ok is not None:
        operation["responses"]["200"] = {"description": ok_description, "content": _json(ok)}
    for code, description in errors.items():
        operation["responses"][code] = _error(description)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    if params:
        operation["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    return operation


def build() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation" if m in _REQUESTS else "serialization") for m in SCHEMAS],
        ref_template="#/components/schemas/{model}",
    )
    schemas = defs["$defs"]
    not_found = {"404": "No such model (or version)."}
    bad = {
        "400": "Malformed JSON, wrong shape or datatype, missing values, unknown inputs.",
        "404": "No such model (or version).",
        "413": "The request body is larger than the limit.",
        "503": "The model is not loaded yet.",
    }
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _operation("Server liveness", protocol.ServerLiveResponse, {})},
        "/v2/health/ready": {
            "get": _operation(
                "Server readiness",
                protocol.ServerReadyResponse,
                {"503": "Not ready (model loading, or draining)."},
            )
        },
        "/v2": {"get": _operation("Server metadata", protocol.ServerMetadataResponse, {})},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    for prefix, params in (
        ("/v2/models/{name}", ["name"]),
        ("/v2/models/{name}/versions/{version}", ["name", "version"]),
    ):
        paths[prefix] = {
            "get": _operation(
                "Model metadata", protocol.ModelMetadataResponse, not_found, params=params
            )
        }
        paths[f"{prefix}/ready"] = {
            "get": _operation(
                "Model readiness",
                protocol.ModelReadyResponse,
                {**not_found, "503": "Not ready."},
                params=params,
            )
        }
        paths[f"{prefix}/infer"] = {
            "post": _operation(
                "Inference",
                protocol.InferenceResponse,
                bad,
                body=protocol.InferenceRequest,
                params=params,
            )
        }
        paths[f"{prefix}/explain"] = {
            "post": _operation(
                "Per-feature attributions (shap) for each row of an inference request",
                protocol.ExplainResponse,
                {**bad, "404": "No such model, or explanations are not switched on."},
                body=protocol.InferenceRequest,
                params=params,
            )
        }
        paths[f"{prefix}/feedback"] = {
            "post": _operation(
                "Ground truth for an earlier inference request (by its response id)",
                protocol.FeedbackResponse,
                {
                    "400": "Malformed feedback, or a row count that does not match.",
                    "404": "Unknown model, or no remembered prediction for that id.",
                    "413": "The request body is larger than the limit.",
                },
                body=protocol.FeedbackRequest,
                params=params,
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mlops model server: Open Inference Protocol v2 (REST)",
            "version": __version__,
            "description": "KServe/MLServer-compatible v2 inference protocol, plus feedback, "
            "explanations and Prometheus metrics. See docs/model-server.md.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


_REQUESTS = (protocol.InferenceRequest, protocol.FeedbackRequest)


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
