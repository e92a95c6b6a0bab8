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

kopf runs standalone (no kopf peering, so no peering CRDs and no RBAC for them). Several
replicas elect a leader over a Lease (leader.py): only the leader starts kopf; the others
wait and answer /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from collections.abc import Collection
from typing import Any

import kopf
from prometheus_client import start_http_server

import mlops_operator.controllers  # noqa: F401  (registers the handlers)
from mlops_operator import kube, leader, metrics
from mlops_operator.controllers.modeldeployment import CHILD_RESOURCES, WAKEUPS
from mlops_operator.controllers.trainingjob import SYNCS
from mlops_operator.objects import (
    LABEL_MANAGED_BY,
    LABEL_MODELDEPLOYMENT,
    LABEL_TRAININGJOB,
    MANAGER,
)
from mlops_operator.settings import OperatorSettings, get_settings

ANNOTATION_PREFIX = "mlops.dev"
M_ARENA_MAX = -8
"""mallopt's parameter number (glibc's malloc.h)."""
WORKERS = 16
"""Threads for the (synchronous) handlers: they mostly wait on the API server."""
OWNED_SELECTOR = f"{LABEL_TRAININGJOB},{LABEL_MANAGED_BY}={MANAGER}"
CHILD_SELECTOR = f"{LABEL_MODELDEPLOYMENT},{LABEL_MANAGED_BY}={MANAGER}"
FINALIZER = "mlops.dev/finalizer"

ROUTINE_HANDLERS = (
    "Handler 'child-",
    "Handler 'trainingjob_event'",
    "Handler 'job_event'",
    "Handler 'pod_event'",
)
"""The watch-event handlers (children, TrainingJobs, training Jobs and Pods)."""

_servers: list[Any] = []


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    """kopf's settings, the API client of the controllers, the metrics server."""
    tune(settings)
    quiet_timers(logging.getLogger("kopf.objects"))
    # A connection for every thread that may send a request at once (kopf's handlers and
    # the wake-up queues'), so none is opened and dropped again under load.
    kube.configure(connections=WORKERS + WAKEUPS.workers + SYNCS.workers + 4)
    ours = get_settings()
    if ours.metrics_port and not _servers:
        serve_metrics(ours.metrics_port)
        logger.info(f"serving metrics on :{ours.metrics_port}/metrics")


def serve_metrics(port: int) -> None:
    _servers.append(start_http_server(port, registry=metrics.REGISTRY))


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
    # The ModelDeployments' children likewise: only those the operator labelled.
    for group, version, plural in CHILD_RESOURCES:
        api_version = f"{group}/{version}" if group else version
        settings.watching.label_selectors[api_version, plural] = CHILD_SELECTOR
    # Events are what the controllers post themselves (kopf.event): not kopf's routine
    # "Handler succeeded" of every pass, two writes per object that nobody reads.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = WORKERS
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


def quiet_timers(objects_logger: logging.Logger) -> None:
    """Timers and watch-event handlers run on every tick or event of every object: their
    successes are logged (and a timer's posted as Events) only at DEBUG. Failures and every
    other handler's outcome stay."""

    def keep(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        routine = message.endswith(" succeeded.") and (
            message.startswith("Timer ") or message.startswith(ROUTINE_HANDLERS)
        )
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


def limit_malloc_arenas() -> None:
    """glibc gives each thread its own malloc arena; with a few dozen handler threads that
    mostly wait on the API server, the arenas' fragmentation shows as RSS. Two are plenty."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)


def run(settings: OperatorSettings) -> None:
    """Runs the operator until SIGINT/SIGTERM; with leader election, once it leads."""
    limit_malloc_arenas()
    elector = None
    if settings.leader_election:
        kube.configure()
        if settings.metrics_port:  # a standby is scraped too (and shows it is one)
            serve_metrics(settings.metrics_port)
        elector = leader.Elector(
            settings.leader_election_namespace,
            settings.leader_election_lease,
            leader.identity(),
            settings.lease_timing(),
        )
        with leader.standby_health(settings.liveness_port, elector):
            elector.acquire()
        elector.keep(leader.stop_acting)
    clusterwide, namespaces = namespaces_of(settings)
    try:
        asyncio.run(
            kopf.operator(
                standalone=True,
                clusterwide=clusterwide,
                namespaces=namespaces,
                liveness_endpoint=liveness_url(settings.liveness_port),
            )
        )
    finally:
        if elector is not None:
            elector.release()
