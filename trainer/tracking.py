"""Experiment tracking in MLflow: params, metrics, the data digest, the model, a version.

Each run becomes an MLflow run in the experiment ``<namespace>/<name>`` (or the spec's): the
estimator's params, the test metrics, tags with the data digest, the artifact's URI and
digest; the Pipeline is logged as an MLflow model (skops serialization: no pickle) and,
unless ``tracking.registerModel`` is false, registered as a version of ``<namespace>-<name>`` with
the alias ``tj-<name>`` naming the TrainingJob (the alias moves to each newer run).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from model_server.artifact import Metadata

TIMEOUT_SECONDS = 10
RETRIES = 1


def names(namespace: str, name: str) -> tuple[str, str, str]:
    """(experiment, registered model, alias)."""
    return f"{namespace}/{name}", f"{namespace}-{name}", f"tj-{name}"


def loggable_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not math.isnan(float(v))
    }


def loggable_params(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v)[:500] for k, v in params.items()}


def trusted_types(pipeline: Any) -> list[str]:
    """What the model server trusts in the skops file (scikit-learn's and numpy's types)."""
    import skops.io

    from model_server.model import trusted_types as server_trusts

    return server_trusts(list(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))))


def log_run(
    server: str, request: Any, meta: Metadata, pipeline: Any, *, uri: str, digest: str
) -> dict[str, Any]:
    with warnings.catch_warnings():  # MLflow's advice (type hints, environments) is noise here
        warnings.simplefilter("ignore")
        return _log_run(server, request, meta, pipeline, uri=uri, digest=digest)


def _log_run(
    server: str, request: Any, meta: Metadata, pipeline: Any, *, uri: str, digest: str
) -> dict[str, Any]:
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(TIMEOUT_SECONDS))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(RETRIES))
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    settings = request.spec.tracking
    experiment, registered, alias = names(request.namespace, request.name)
    experiment = (settings.experiment if settings else None) or experiment
    client = MlflowClient(tracking_uri=server, registry_uri=server)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    mlflow.set_tracking_uri(server)
    mlflow.set_registry_uri(server)
    with mlflow.start_run(experiment_id=experiment_id, run_name=request.version) as run:
        mlflow.log_params(loggable_params(meta.params))
        mlflow.log_metrics(loggable_metrics(meta.metrics))
        mlflow.set_tags(
            {
                "mlops.dev/trainingjob": f"{request.namespace}/{request.name}",
                "mlops.dev/version": request.version,
                "mlops.dev/data-digest": meta.data_digest,
                "mlops.dev/artifact": uri,
                "mlops.dev/digest": digest,
                "mlops.dev/estimator": meta.estimator,
            }
        )
        logged = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="skops",
            skops_trusted_types=trusted_types(pipeline),
        )
        run_id = run.info.run_id
    tracked: dict[str, Any] = {"uri": server, "experiment": experiment, "runId": run_id}
    if settings is None or settings.register_model:
        version = mlflow.register_model(logged.model_uri, registered)
        client.set_registered_model_alias(registered, alias, version.version)
        tracked.update(model=registered, version=str(version.version), alias=alias)
    return tracked
