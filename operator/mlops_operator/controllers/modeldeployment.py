"""ModelDeployment handlers: resolve -> decide -> build -> apply -> write.

One reconciliation, from the create/update/resume handlers and from a timer every
``analysis_tick_seconds``: resolve the models, run the rollout state machine (reading the
variants' metrics when an analysis is due), apply the children, write the whole status. The
logic is pure and lives elsewhere (canary/, builders/, traffic/, status/modeldeployment.py);
all rollout state lives in the status, so a restarted operator carries on where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol, cast

import kopf
from pydantic import ValidationError

from mlops_operator import kube, metrics
from mlops_operator.api import GROUP, VERSION
from mlops_operator.api.common import ModelRef
from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.builders.modeldeployment import children, service_url, split_for
from mlops_operator.builders.serving import PORT, ServingOptions
from mlops_operator.canary import Plan, decide
from mlops_operator.canary.machine import Decision, due
from mlops_operator.canary.resolve import ServedModel, Waiting, resolve
from mlops_operator.controllers.errors import handling
from mlops_operator.manifests import describe
from mlops_operator.metrics_sources import Window, source_for
from mlops_operator.objects import (
    LABEL_VARIANT,
    MODELDEPLOYMENT,
    POD,
    TRAININGJOB,
    VARIANTS,
    Kind,
    VariantName,
    owner_reference,
    selector,
    selector_string,
    variant_name,
)
from mlops_operator.settings import OperatorSettings, get_settings
from mlops_operator.status import modeldeployment as mdstatus
from mlops_operator.status.conditions import find
from mlops_operator.traffic.providers import PROVIDERS
from mlops_operator.traffic.router import RouterOptions

KIND = "ModelDeployment"
RESOURCE = (GROUP, VERSION, "modeldeployments")
STATUS_CONFLICTS = 3
log = logging.getLogger(__name__)

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


class Client(Protocol):
    """What a reconciliation needs of the API (the kube module; a fake in unit tests)."""

    def get(self, kind_: Kind, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_(self, kind_: Kind, namespace: str, selector: str) -> list[dict[str, Any]]: ...
    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...
    def delete(self, api_version: str, kind_name: str, namespace: str, name: str) -> bool: ...
    def replace_status(self, kind_: Kind, body: Mapping[str, Any]) -> None: ...


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def changed(namespace: str | None, name: str, **_: Any) -> None:
    """The spec is new (or the operator restarted): reconcile, and drop other providers' routes."""
    with handling(KIND):
        invalid = reconcile(namespace or "default", name, cleanup=True)
    if invalid:
        raise kopf.PermanentError(invalid)


@kopf.timer(*RESOURCE, interval=get_settings().analysis_tick_seconds)
def tick(namespace: str | None, name: str, **_: Any) -> None:
    """Readiness, new TrainingJobs and the analysis interval: reconcile."""
    with handling(KIND):
        reconcile(namespace or "default", name)


def reconcile(
    namespace: str,
    name: str,
    *,
    cleanup: bool = False,
    client: Client | None = None,
    settings: OperatorSettings | None = None,
    now: float | None = None,
) -> str | None:
    """One pass over one ModelDeployment; the problem when its spec is invalid."""
    with _lock(namespace, name):
        client = client or cast(Client, kube)
        body = client.get(MODELDEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        pass_ = Reconciliation(client, body, settings or get_settings(), now or time.time())
        return pass_.run(cleanup)


class Reconciliation:
    """One pass over one ModelDeployment: the steps, each a call into pure code or the client."""

    def __init__(
        self, client: Client, body: dict[str, Any], settings: OperatorSettings, now: float
    ) -> None:
        self.client = client
        self.body = body
        self.settings = settings
        self.now = now
        self.name = str(body["metadata"]["name"])
        self.namespace = str(body["metadata"]["namespace"])
        self.status: dict[str, Any] = dict(body.get("status") or {})
        self.generation: int | None = body["metadata"].get("generation")

    def run(self, cleanup: bool) -> str | None:
        try:
            spec = ModelDeploymentSpec.model_validate(self.body.get("spec") or {})
        except ValidationError as error:
            message = f"invalid spec: {describe(error)}"
            self._put(mdstatus.failed(self.status, self.generation, message, self.now))
            return message
        wanted_stable = self._resolve(spec.stable.model)
        stable = mdstatus.promoted_stable(self.status, wanted_stable)
        if isinstance(stable, Waiting):
            self._put(mdstatus.waiting(self.status, self.generation, stable, self.now))
            return None
        canary_pick = self._resolve(spec.canary.model) if spec.canary else None
        canary = canary_pick if isinstance(canary_pick, ServedModel) else None
        state = mdstatus.state_from_status(self.status)
        if canary is not None and canary.digest == stable.digest and state.canary != canary.digest:
            canary = None  # already served by the stable variant: nothing to roll out
        plan = Plan.from_spec(spec)
        identity = canary.digest if canary else None
        source = source_for(spec.analysis.metrics, self.settings.prometheus_selector)
        window = Window(
            self.namespace,
            self.name,
            since=state.since if state.since is not None else self.now - plan.interval,
            now=self.now,
            targets=self._targets,
            snapshot=mdstatus.snapshot_from_status(self.status),
        )
        reading = source.measure(window) if due(plan, state, identity, self.now) else None
        measured = reading.metrics if reading else {}
        decision = decide(
            plan, state, identity, self.now, measured.get("canary"), baseline=measured.get("stable")
        )
        promoted = self.status.get("promoted")
        if decision.action == "promote" and canary is not None:
            replaces = wanted_stable.digest if isinstance(wanted_stable, ServedModel) else None
            promoted = {**mdstatus.served(canary), "replaces": replaces}
            stable = canary
        snapshot = reading.snapshot if reading else None
        if decision.new_window and snapshot is None:
            snapshot = source.begin(window)
        active = canary is not None and decision.state.phase in mdstatus.ACTIVE
        applied = self._apply(spec, stable, canary if active else None, decision, cleanup)
        seen = mdstatus.Observation(
            decision=decision,
            stable=stable,
            canary=canary,
            servers=_servers(self.name, spec, applied, active),
            url=service_url(self.name, self.namespace, spec, self._provider(spec), self._router()),
            shadow=spec.strategy == "shadow",
            wanted_stable_replicas=spec.stable.replicas,
            promoted=promoted,
            measured=reading.metrics if reading else None,
            snapshot=snapshot,
            canary_waiting=canary_pick if isinstance(canary_pick, Waiting) else None,
        )
        status = mdstatus.compose(self.status, self.generation, seen, self.now)
        self._put(status)
        self._announce(decision, status)
        return None

    def _provider(self, spec: ModelDeploymentSpec) -> str:
        return spec.router.provider or self.settings.default_router

    def _router(self) -> RouterOptions:
        return RouterOptions(
            image=self.settings.router_image,
            replicas=self.settings.router_replicas,
            cluster_domain=self.settings.cluster_domain,
        )

    def _resolve(self, ref: ModelRef) -> ServedModel | Waiting:
        if ref.training_job is not None:
            return resolve(ref, self.client.get(TRAININGJOB, self.namespace, ref.training_job))
        if ref.selector is not None:
            wanted = selector_string(ref.selector.match_labels)
            return resolve(ref, selected=self.client.list_(TRAININGJOB, self.namespace, wanted))
        return resolve(ref)

    def _targets(self) -> dict[str, dict[str, str]]:
        """Each variant's /metrics URLs by server: its ready Pods, or the settings' override."""
        override = self.settings.metrics_targets.get(f"{self.namespace}/{self.name}")
        if override:
            return {variant: {url: url for url in urls} for variant, urls in override.items()}
        targets: dict[str, dict[str, str]] = {variant: {} for variant in VARIANTS}
        pods = selector_string(selector(self.name, "model-server"))
        for pod in self.client.list_(POD, self.namespace, pods):
            variant = pod["metadata"].get("labels", {}).get(LABEL_VARIANT)
            ip = (pod.get("status") or {}).get("podIP")
            ready = find((pod.get("status") or {}).get("conditions"), "Ready")
            if variant in targets and ip and ready and ready.get("status") == "True":
                targets[variant][pod["metadata"]["name"]] = f"http://{ip}:{PORT}/metrics"
        return targets

    def _apply(
        self,
        spec: ModelDeploymentSpec,
        stable: ServedModel,
        canary: ServedModel | None,
        decision: Decision,
        cleanup: bool,
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Applies the children; deletes what must go. The children as stored, by kind and name."""
        provider = self._provider(spec)
        wanted = children(
            self.name,
            self.namespace,
            spec,
            provider=provider,
            stable=stable,
            canary=canary,
            split=split_for(spec, canary is not None, decision.state.weight),
            serving=ServingOptions(
                image=self.settings.model_server_image,
                image_pull_policy=self.settings.image_pull_policy,
                pvc_root=self.settings.pvc_root,
            ),
            router=self._router(),
        )
        owner = owner_reference(KIND, self.body["metadata"])
        applied: dict[tuple[str, str], dict[str, Any]] = {}
        for obj in wanted.apply:
            obj["metadata"]["ownerReferences"] = [owner]
            applied[obj["kind"], obj["metadata"]["name"]] = self.client.apply(obj)
        gone = list(wanted.delete) if cleanup else []
        if wanted.delete_canary and PROVIDERS[provider].settled(self.name, applied):
            gone += wanted.delete_canary
        for api_version, kind_name, child in gone:
            self.client.delete(api_version, kind_name, self.namespace, child)
        return applied

    def _put(self, status: dict[str, Any]) -> None:
        """Replaces the status unless it is unchanged; on a conflict reads again, unless the
        spec changed meanwhile (the next pass decides again)."""
        status["observedGeneration"] = self.generation
        if status == (self.body.get("status") or {}):
            return
        for _ in range(STATUS_CONFLICTS):
            try:
                self.client.replace_status(MODELDEPLOYMENT, {**self.body, "status": status})
                return
            except kube.Conflict:
                fresh = self.client.get(MODELDEPLOYMENT, self.namespace, self.name)
                if fresh is None or fresh["metadata"].get("generation") != self.generation:
                    return
                self.body = fresh

    def _announce(self, decision: Decision, status: Mapping[str, Any]) -> None:
        metrics.CANARY_WEIGHT.labels(self.namespace, self.name).set(status["canaryWeight"])
        if decision.verdict is not None:
            metrics.ANALYSIS_TOTAL.labels(decision.verdict).inc()
        if not decision.transition:
            return
        metrics.ROLLOUT_TRANSITIONS.labels(decision.action).inc()
        log.info(
            "%s/%s: %s (%s): %s",
            self.namespace,
            self.name,
            decision.action,
            decision.reason,
            decision.message,
        )
        ref = kopf.Body(cast(kopf.RawBody, dict(self.body)))
        kind = "Warning" if decision.action == "rollback" else "Normal"
        kopf.event(ref, type=kind, reason=decision.reason, message=decision.message[:1000])


def _servers(
    name: str,
    spec: ModelDeploymentSpec,
    applied: Mapping[tuple[str, str], Mapping[str, Any]],
    canary_active: bool,
) -> dict[VariantName, mdstatus.Servers]:
    """Each variant's wanted and ready model servers, from its Deployment as stored."""

    def servers(variant: VariantName, default: int) -> mdstatus.Servers:
        deployment = applied.get(("Deployment", variant_name(name, variant))) or {}
        wanted = (deployment.get("spec") or {}).get("replicas", default)
        ready = (deployment.get("status") or {}).get("readyReplicas") or 0
        return mdstatus.Servers(int(wanted), int(ready))

    out = {"stable": servers("stable", spec.stable.replicas)}
    if canary_active:
        out["canary"] = servers("canary", 0)
    return cast(dict[VariantName, mdstatus.Servers], out)
