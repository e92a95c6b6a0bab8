"""The model server's settings: flags of `mlops serve`, or MLOPS_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_server.artifact import DIGEST_PATTERN


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

    @field_validator("model_digest", "reference_model_digest")
    @classmethod
    def _digest_format(cls, value: str | None) -> str | None:
        if value is not None and not DIGEST_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a digest of the form sha256:<64 lowercase hex> (nothing "
                "before or after it, no newline)"
            )
        return value

    @model_validator(mode="after")
    def _metrics_port_alone(self) -> ServerSettings:
        if self.metrics_port >= 0 and self.workers > 1:
            raise ValueError("metrics_port needs workers 1: each worker has its own metrics")
        return self

    @model_validator(mode="after")
    def _reference_pinned(self) -> ServerSettings:
        if (self.reference_model_uri is None) != (self.reference_model_digest is None):
            raise ValueError(
                "reference_model_uri and reference_model_digest go together: agreement is "
                "measured against a pinned reference model"
            )
        return self

    reference_model_uri: str | None = Field(
        default=None,
        description="A second model to compare every prediction with, row by row, off the "
        "request path (mlops_reference_agreement_total): under strategy shadow the operator "
        "sets the stable variant's model here, so the shadow's agreement with stable is "
        "measured on the very inputs both got.",
    )
    reference_model_digest: str | None = Field(
        default=None,
        description="The reference model's pinned digest, sha256:<64 hex> (verified as the "
        "served model's).",
    )
    agreement_tolerance: float = Field(
        default=0.0,
        ge=0.0,
        description="Regressors: a prediction agrees with the reference's when they differ by "
        "at most this much (0: exactly equal). Classifiers agree on equal classes.",
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
    explain: bool = Field(
        default=False,
        description="Answer POST /v2/models/{name}/explain with per-feature shap attributions. "
        "Explanations need the scikit-learn Pipeline: with the onnx runtime the server loads "
        "model.skops as well (more memory) and keeps predicting with onnx.",
    )
    explain_samples: int = Field(
        default=200,
        ge=10,
        le=100_000,
        description="Model-agnostic explanations (estimators that are neither tree ensembles "
        "nor linear): the budget of model evaluations per explained row.",
    )
    explain_max_rows: int = Field(
        default=100, ge=1, description="Most rows accepted in one explain request."
    )
    host: str = Field(default="0.0.0.0", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port to listen on.")
    metrics_port: int = Field(
        default=-1,
        ge=-1,
        le=65535,
        description="Serve /metrics on this port only (0: any free port), so that a "
        "NetworkPolicy can let only the operator and Prometheus reach it; -1: on --port, beside "
        "inference (the local runner). Needs workers 1.",
    )
    feedback_token: SecretStr | None = Field(
        default=None,
        description="When set, POST .../feedback needs the header 'Authorization: Bearer "
        "<token>' (401 without, 403 with another): feedback steers rollouts. In a cluster the "
        "operator sets it from the ModelDeployment's Secret <name>-feedback.",
    )
    router_token: SecretStr | None = Field(
        default=None,
        description="The builtin router's proof: an infer or feedback request whose header "
        "'X-Mlops-Router' holds this token is counted as source=\"router\" in the metrics the "
        "analysis reads; every other request (and every request when this is unset) as "
        'source="direct". In a cluster the operator sets it from the ModelDeployment\'s '
        "Secret <name>-router-token.",
    )
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
    max_request_id_length: int = Field(
        default=256,
        ge=1,
        le=65536,
        description="Longest request id accepted (characters); a longer one gets 400. The ids of "
        "the last feedback_capacity requests are remembered, so this bounds their memory.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection (or a keep-alive request, from its first byte) gets "
        "to send its request line and headers; then it is closed.",
    )
    body_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a request gets to send its whole body once its headers are in; "
        "then the connection is closed.",
    )
    keep_alive_timeout: float = Field(
        default=75.0,
        gt=0,
        description="Seconds an idle keep-alive connection is kept open. Longer than the "
        "router's (nginx keeps upstream connections 60 s) so that the router, not the server, "
        "closes them: a server closing first races the router's next request.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Most open HTTP connections. A new one beyond it closes the connection idle "
        "the longest (no request in progress); when all are busy it gets 503. Lowered to the "
        "open-file limit minus a reserve when that is smaller.",
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
    drain_seconds: float = Field(
        default=5.0,
        ge=0,
        description="After SIGTERM, seconds to go on serving while not ready, answering every "
        "request with Connection: close, so that keep-alive clients (the router) move to "
        "other servers before connections close; then the graceful shutdown. 0: none.",
    )
    graceful_timeout: int = Field(
        default=30,
        ge=0,
        description="Seconds to let in-flight requests finish after SIGTERM.",
    )
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")
