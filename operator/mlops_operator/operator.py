"""The kopf operator: configuration, startup and the metrics endpoint (`mlops operator`).

State is kept in annotations, not in the status: kopf's default "smart" storage also writes
``status.kopf``, which our CRDs' structural schemas would prune (they list every status
field and do not preserve unknown ones). With annotations the status holds only the API's
fields, and kopf's progress survives a restart:

- progress of handlers (retries, done): ``mlops.dev/<handler-id>`` annotations;
- the last handled spec (for diffs): ``mlops.dev/last-handled-configuration``.

kopf's scanning of CustomResourceDefinitions is off: the API is discovered once at startup,
so the CRDs must exist before the operator starts (the Helm chart installs them first), and
the operator needs no read access to CRDs.

The operator runs standalone (one replica; no kopf peering, so no peering CRDs and no RBAC
for them): the Helm chart's Deployment uses the Recreate strategy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

import kopf
from prometheus_client import start_http_server

import mlops_operator.controllers  # noqa: F401  (registers the handlers)
from mlops_operator import kube, metrics
from mlops_operator.objects import LABEL_MANAGED_BY, LABEL_TRAININGJOB, MANAGER
from mlops_operator.settings import OperatorSettings, get_settings

ANNOTATION_PREFIX = "mlops.dev"
OWNED_SELECTOR = f"{LABEL_TRAININGJOB},{LABEL_MANAGED_BY}={MANAGER}"
FINALIZER = "mlops.dev/finalizer"

_servers: list[Any] = []


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    """kopf's settings, the API client of the controllers, the metrics server."""
    tune(settings)
    quiet_timers(logging.getLogger("kopf.objects"))
    kube.configure()
    ours = get_settings()
    if ours.metrics_port:
        _servers.append(start_http_server(ours.metrics_port, registry=metrics.REGISTRY))
        logger.info(f"serving metrics on :{ours.metrics_port}/metrics")


def tune(settings: kopf.OperatorSettings) -> None:
    """kopf's settings: state in annotations, no CRD scanning, server-side label filters."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # No watching of CustomResourceDefinitions (which would need cluster-wide read on them):
    # the resources are discovered once at startup; the chart installs the CRDs first.
    settings.scanning.disabled = True
    # Pods and Jobs: watch only ours, filtered by the API server (not every Pod of the
    # cluster). Any future watch of Pods or Jobs sees only these labels too.
    for selector in (("v1", "pods"), ("batch/v1", "jobs")):
        settings.watching.label_selectors[selector] = OWNED_SELECTOR
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 8
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


def quiet_timers(objects_logger: logging.Logger) -> None:
    """Timers run every few seconds per object: their successes are logged (and posted as
    Events) only at DEBUG. Failures and every other handler's outcome stay."""

    def keep(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        routine = message.startswith("Timer ") and message.endswith(" succeeded.")
        return not routine or objects_logger.isEnabledFor(logging.DEBUG)

    objects_logger.addFilter(keep)


@kopf.on.cleanup()
def stop_metrics(**_: Any) -> None:
    while _servers:
        server, thread = _servers.pop()
        server.shutdown()
        thread.join(timeout=5)


def namespaces_of(settings: OperatorSettings) -> tuple[bool, Collection[str]]:
    """(clusterwide, namespaces) for kopf: every namespace unless some are named."""
    return (not settings.namespaces, tuple(settings.namespaces))


def liveness_url(port: int) -> str | None:
    return f"http://0.0.0.0:{port}/healthz" if port else None


def run(settings: OperatorSettings) -> None:
    """Runs the operator until SIGINT/SIGTERM."""
    clusterwide, namespaces = namespaces_of(settings)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=clusterwide,
            namespaces=namespaces,
            liveness_endpoint=liveness_url(settings.liveness_port),
        )
    )
