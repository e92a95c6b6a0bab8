"""The model server's settings: flags of `mlops serve`, or MLOPS_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """How one model server process (or group of worker processes) runs.

    Every field can be set with an environment variable named ``MLOPS_<FIELD>`` (e.g.
    ``MLOPS_MODEL_URI``); the `mlops serve` flags of the same names take precedence.
    """

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore", frozen=True)

    model_uri: str = Field(
        description="Model store URI of the artifact directory: file://, pvc://<claim>/<path>, "
        "s3:// or a plain path."
    )
    model_digest: str = Field(
        description="The pinned artifact digest, sha256:<64 hex>. The server refuses to serve "
        "an artifact whose content does not match it."
    )
    model_name: str | None = Field(
        default=None,
        description="The name the model is served under in /v2/models/{name}; defaults to the "
        "name in the artifact's metadata.json.",
    )
    variant: str = Field(
        default="stable",
        description="The deployment variant this server belongs to (stable, canary, ...): the "
        "`variant` label of every metric.",
    )
    runtime: Literal["auto", "onnx", "sklearn"] = Field(
        default="auto",
        description="What predicts: onnx (model.onnx in onnxruntime), sklearn (model.skops), or "
        "auto: onnx when the artifact holds a model.onnx that the trainer verified, else "
        "sklearn. onnx refuses an artifact without one.",
    )
    onnx_intra_op_threads: int = Field(
        default=1,
        ge=0,
        description="onnxruntime threads within one operator (0: one per core). One suits "
        "small sklearn graphs: batches are small and the server has other work.",
    )
    onnx_inter_op_threads: int = Field(
        default=1, ge=0, description="onnxruntime threads across operators (0: one per core)."
    )
    host: str = Field(default="0.0.0.0", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port to listen on.")
    grpc_port: int = Field(
        default=8081,
        ge=-1,
        le=65535,
        description="TCP port of the Open Inference Protocol's gRPC service (0: any free port, "
        "-1: no gRPC).",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes sharing the port. Each has its own model copy and its own "
        "metrics; prefer more replicas to more workers when Prometheus scrapes the Pods.",
    )
    max_batch_size: int = Field(
        default=64,
        ge=1,
        description="Adaptive batching: most rows joined into one predict call.",
    )
    max_batch_wait: float = Field(
        default=0.0,
        ge=0.0,
        le=10.0,
        description="Adaptive batching: seconds to wait for more requests once one arrived while "
        "the batch is below max_batch_size. 0 joins only the requests that are already waiting "
        "(no added latency); requests that arrive during a predict call are joined anyway.",
    )
    max_request_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger ones get 413.",
    )
    max_rows: int = Field(
        default=10_000, ge=1, description="Most rows (instances) accepted in one infer request."
    )
    allow_pickle: bool = Field(
        default=False,
        description="Opt in to loading a joblib/pickle model (model.joblib or model.pkl) when the "
        "artifact has no model.skops. Unpickling runs arbitrary code from the file: enable only "
        "for artifacts you trust. The digest is still verified.",
    )
    feedback_capacity: int = Field(
        default=10_000,
        ge=0,
        description="Most predictions remembered (by request id) for POST .../feedback; the "
        "oldest are forgotten first.",
    )
    drift_window: int = Field(
        default=10_000,
        ge=10,
        description="Effective number of recent rows in the served-input statistics that drift "
        "(PSI) is computed from (an exponentially decaying histogram).",
    )
    drift_min_rows: int = Field(
        default=100,
        ge=1,
        description="Rows served before drift (PSI) is reported: a handful of rows gives any "
        "PSI at all. mlops_feature_drift_rows says how many rows it is based on.",
    )
    graceful_timeout: int = Field(
        default=30,
        ge=0,
        description="Seconds to let in-flight requests finish after SIGTERM.",
    )
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")
