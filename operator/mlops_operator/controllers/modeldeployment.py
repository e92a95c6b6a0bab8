"""ModelDeployment handlers: thin; the work is in canary/, builders/, traffic/ and children.py.

One reconciliation, from the create/update/resume handlers and from a timer every
``analysis_tick_seconds``: resolve the models, run the rollout state machine (reading the
variants' metrics when an analysis is due), apply the children, write the whole status.
All rollout state lives in the status, so a restarted operator carries on where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, cast

import kopf
from pydantic import ValidationError

from mlops_operator import children as kube
from mlops_operator import metrics
from mlops_operator.api import GROUP, VERSION
from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.builders.modeldeployment import children, split_for
from mlops_operator.builders.serving import (
    COMPONENT_LABEL,
    MDEP_LABEL,
    PORT,
    VARIANT_LABEL,
    ServedModel,
    ServingOptions,
)
from mlops_operator.canary import Plan, VariantMetrics, decide
from mlops_operator.canary.machine import Decision, RolloutState, due
from mlops_operator.canary.metrics import Counters
from mlops_operator.canary.resolve import Waiting, resolve, selector_string
from mlops_operator.canary.status import (
    rfc3339,
    snapshot_from_status,
    snapshot_to_status,
    state_from_status,
)
from mlops_operator.metrics_sources import BuiltinSource, PrometheusSource, QueryError
from mlops_operator.settings import OperatorSettings, get_settings
from mlops_operator.status.conditions import condition, find
from mlops_operator.traffic.router import RouterOptions

KIND = "ModelDeployment"
RESOURCE = (GROUP, VERSION, "modeldeployments")
ACTIVE = ("Progressing", "Paused")
log = logging.getLogger(__name__)

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def changed(namespace: str | None, name: str, **_: Any) -> None:
    """The spec is new (or the operator restarted): reconcile, and drop other providers' routes."""
    with metrics.reconciling(KIND):
        reconcile(namespace or "default", name, cleanup=True)


@kopf.timer(*RESOURCE, interval=get_settings().analysis_tick_seconds)
def tick(namespace: str | None, name: str, **_: Any) -> None:
    """Readiness, new TrainingJobs and the analysis interval: reconcile."""
    with metrics.reconciling(KIND):
        reconcile(namespace or "default", name)


def reconcile(namespace: str, name: str, *, cleanup: bool = False) -> None:
    with _lock(namespace, name):
        body = kube.get_modeldeployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        Reconciliation(body, get_settings(), time.time()).run(cleanup)


def _served(model: ServedModel | None) -> dict[str, Any]:
    if model is None:
        return {}
    return {"model": model.name or model.uri, "uri": model.uri, "digest": model.digest}


class Reconciliation:
    """One pass over one ModelDeployment (built per call; holds no state between calls)."""

    def __init__(self, body: dict[str, Any], settings: OperatorSettings, now: float) -> None:
        self.body = body
        self.settings = settings
        self.now = now
        self.name = str(body["metadata"]["name"])
        self.namespace = str(body["metadata"]["namespace"])
        self.status: dict[str, Any] = dict(body.get("status") or {})

    # -- the steps -------------------------------------------------------------------------

    def run(self, cleanup: bool) -> None:
        try:
            spec = ModelDeploymentSpec.model_validate(self.body.get("spec") or {})
        except ValidationError as error:
            self._write_failed(f"invalid spec: {error.errors()[0]['msg']}")
            return
        stable_pick = self._resolve(spec.stable.model)
        stable = self._stable_served(stable_pick)
        if isinstance(stable, Waiting):
            self._write_waiting(stable)
            return
        canary_pick = self._resolve(spec.canary.model) if spec.canary else None
        canary = canary_pick if isinstance(canary_pick, ServedModel) else None
        state = state_from_status(self.status)
        if canary is not None and canary.digest == stable.digest and state.canary != canary.digest:
            canary = None  # already served by the stable variant: nothing to roll out
        plan = Plan.from_spec(spec)
        identity = canary.digest if canary else None
        observed: dict[str, VariantMetrics | None] = {}
        snapshot: dict[str, dict[str, Counters]] | None = None
        if due(plan, state, identity, self.now):
            observed, snapshot = self._measure(spec, state, plan)
        decision = decide(plan, state, identity, self.now, observed.get("canary"))
        new = decision.state
        promoted = self.status.get("promoted")
        if decision.action == "promote" and canary is not None:
            replaces = stable_pick.digest if isinstance(stable_pick, ServedModel) else None
            promoted = {**_served(canary), "replaces": replaces}
            stable = canary
        active = canary is not None and new.phase in ACTIVE
        if decision.new_window and spec.analysis.metrics.source == "builtin" and snapshot is None:
            snapshot = BuiltinSource().snapshot(self._targets())
        provider = spec.router.provider or self.settings.default_router
        wanted = children(
            self.name,
            self.namespace,
            spec,
            provider=provider,
            stable=stable,
            canary=canary if active else None,
            split=split_for(spec, active, new.weight),
            serving=ServingOptions(
                image=self.settings.model_server_image,
                image_pull_policy=self.settings.image_pull_policy,
            ),
            router=RouterOptions(
                image=self.settings.router_image,
                replicas=self.settings.router_replicas,
                cluster_domain=self.settings.cluster_domain,
            ),
        )
        applied = {
            (obj["kind"], obj["metadata"]["name"]): kube.apply(self._owned(obj))
            for obj in wanted.apply
        }
        if cleanup:
            for ref in wanted.delete:
                kube.delete(ref[0], ref[1], self.namespace, ref[2])
        if wanted.delete_canary and self._router_settled(provider, applied):
            for ref in wanted.delete_canary:
                kube.delete(ref[0], ref[1], self.namespace, ref[2])
        self._write(
            spec=spec,
            decision=decision,
            stable=stable,
            canary=canary,
            promoted=promoted,
            observed=observed,
            snapshot=snapshot,
            applied=applied,
            provider=provider,
        )
        self._announce(decision)

    def _resolve(self, ref: Any) -> ServedModel | Waiting:
        if ref.training_job is not None:
            return resolve(ref, kube.get_trainingjob(self.namespace, ref.training_job))
        if ref.selector is not None:
            selector = selector_string(ref.selector.match_labels)
            return resolve(ref, selected=kube.list_trainingjobs(self.namespace, selector))
        return resolve(ref)

    def _stable_served(self, pick: ServedModel | Waiting) -> ServedModel | Waiting:
        """spec.stable's model, unless a promoted canary replaced that very model."""
        promoted = self.status.get("promoted") or {}
        if isinstance(pick, ServedModel):
            if promoted.get("digest") and promoted.get("replaces") == pick.digest:
                return ServedModel(promoted["uri"], promoted["digest"], promoted.get("model"))
            return pick
        served = self.status.get("stable") or {}
        if served.get("uri") and served.get("digest"):
            return ServedModel(served["uri"], served["digest"], served.get("model"))
        return pick

    def _targets(self) -> dict[str, dict[str, str]]:
        """Each variant's /metrics URLs by server: its ready Pods, or the settings' override."""
        override = self.settings.metrics_targets.get(f"{self.namespace}/{self.name}")
        if override:
            return {variant: {url: url for url in urls} for variant, urls in override.items()}
        targets: dict[str, dict[str, str]] = {"stable": {}, "canary": {}}
        selector = f"{MDEP_LABEL}={self.name},{COMPONENT_LABEL}=model-server"
        for pod in kube.list_pods(self.namespace, selector):
            variant = pod["metadata"].get("labels", {}).get(VARIANT_LABEL)
            ip = (pod.get("status") or {}).get("podIP")
            ready = find((pod.get("status") or {}).get("conditions"), "Ready")
            if variant in targets and ip and ready and ready.get("status") == "True":
                targets[variant][pod["metadata"]["name"]] = f"http://{ip}:{PORT}/metrics"
        return targets

    def _measure(
        self, spec: ModelDeploymentSpec, state: RolloutState, plan: Plan
    ) -> tuple[dict[str, VariantMetrics | None], dict[str, dict[str, Counters]] | None]:
        source = spec.analysis.metrics
        if source.source == "prometheus" and source.prometheus_url:
            reader = PrometheusSource(source.prometheus_url, self.settings.prometheus_selector)
            since = state.since if state.since is not None else self.now - plan.interval
            try:
                return reader.read(
                    self.namespace, self.name, ("stable", "canary"), since, self.now
                ), None
            except QueryError as error:
                log.warning("%s/%s: cannot query Prometheus: %s", self.namespace, self.name, error)
                return {}, None
        reading = BuiltinSource().read(self._targets(), snapshot_from_status(self.status))
        return reading.metrics, reading.snapshot

    def _owned(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = self.body["metadata"]
        obj["metadata"]["ownerReferences"] = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        return obj

    def _router_settled(self, provider: str, applied: Mapping[tuple[str, str], Any]) -> bool:
        """No old router Pod may still send to the canary (the nginx router rolled out)."""
        if provider != "builtin":
            return True
        router = next(
            (
                o
                for (kind, _), o in applied.items()
                if kind == "Deployment" and o["metadata"]["name"].endswith("-router")
            ),
            None,
        )
        if router is None:
            return True
        spec, status = router.get("spec") or {}, router.get("status") or {}
        return bool(
            status.get("observedGeneration", 0) >= router["metadata"].get("generation", 0)
            and status.get("updatedReplicas", 0) == spec.get("replicas")
            and status.get("replicas", 0) == spec.get("replicas")
        )

    # -- the status ------------------------------------------------------------------------

    def _conditions(self, types: Mapping[str, tuple[bool, str, str]]) -> list[dict[str, Any]]:
        previous = self.status.get("conditions")
        generation = self.body["metadata"].get("generation")
        kept = {c["type"]: c for c in previous or ()}
        for type_, (value, reason, message) in types.items():
            kept[type_] = condition(
                type_,
                value,
                reason=reason,
                message=message[:1000],
                generation=generation,
                previous=previous,
                now=_utc(self.now),
            )
        return [kept[t] for t in ("Ready", "Progressing", "Degraded") if t in kept]

    def _put(self, status: dict[str, Any]) -> None:
        status["observedGeneration"] = self.body["metadata"].get("generation")
        if status == (self.body.get("status") or {}):
            return
        for _ in range(3):
            try:
                kube.replace_modeldeployment_status({**self.body, "status": status})
                return
            except kube.Conflict:
                fresh = kube.get_modeldeployment(self.namespace, self.name)
                if fresh is None:
                    return
                if fresh["metadata"].get("generation") != self.body["metadata"].get("generation"):
                    return  # the spec changed: the next pass decides again
                self.body = fresh

    def _write_failed(self, message: str) -> None:
        status = dict(self.status)
        status.update(
            phase="Failed",
            message=message,
            conditions=self._conditions(
                {
                    "Ready": (False, "InvalidSpec", message),
                    "Degraded": (True, "InvalidSpec", message),
                }
            ),
        )
        self._put(status)

    def _write_waiting(self, waiting: Waiting) -> None:
        status = dict(self.status)
        status.update(
            message=waiting.message,
            conditions=self._conditions(
                {
                    "Ready": (False, waiting.reason, waiting.message),
                    "Progressing": (True, waiting.reason, waiting.message),
                }
            ),
        )
        self._put(status)

    def _write(
        self,
        *,
        spec: ModelDeploymentSpec,
        decision: Decision,
        stable: ServedModel,
        canary: ServedModel | None,
        promoted: Any,
        observed: Mapping[str, VariantMetrics | None],
        snapshot: Mapping[str, Mapping[str, Counters]] | None,
        applied: Mapping[tuple[str, str], Any],
        provider: str,
    ) -> None:
        new = decision.state
        active = canary is not None and new.phase in ACTIVE
        shadow = spec.strategy == "shadow"
        stable_dep = applied.get(("Deployment", f"{self.name}-stable")) or {}
        ready = int((stable_dep.get("status") or {}).get("readyReplicas") or 0)
        status: dict[str, Any] = dict(self.status)
        status["phase"] = new.phase
        status["canaryWeight"] = new.weight if active else 0
        status["stable"] = {
            **_served(stable),
            "replicas": (stable_dep.get("spec") or {}).get("replicas", spec.stable.replicas),
            "readyReplicas": ready,
            "weight": 100 - (new.weight if active and not shadow else 0),
        }
        if canary is not None and new.canary == canary.digest:
            canary_dep = applied.get(("Deployment", f"{self.name}-canary")) or {}
            status["canary"] = {
                **_served(canary),
                "replicas": (canary_dep.get("spec") or {}).get("replicas", 0) if active else 0,
                "readyReplicas": int((canary_dep.get("status") or {}).get("readyReplicas") or 0)
                if active
                else 0,
                "weight": (100 if shadow else new.weight) if active else 0,
            }
        else:
            status.pop("canary", None)
        if promoted:
            status["promoted"] = promoted
        status["analysis"] = self._analysis(decision, observed, snapshot)
        status["url"] = self._url(spec, provider)
        if decision.action not in ("wait", "done"):
            status["message"] = decision.message
        status.setdefault("message", decision.message)
        conditions: dict[str, tuple[bool, str, str]] = {
            "Ready": (
                ready > 0,
                "Serving" if ready > 0 else "ModelServersNotReady",
                f"{ready} stable model server(s) ready",
            ),
        }
        if decision.action not in ("wait", "done"):
            conditions["Progressing"] = (new.phase in ACTIVE, decision.reason, decision.message)
            failed = decision.action == "rollback"
            conditions["Degraded"] = (
                failed,
                decision.reason if failed else "AsExpected",
                decision.message if failed else "no failed analysis",
            )
        status["conditions"] = self._conditions(conditions)
        if new.phase == "Stable" and ready == 0 and spec.stable.replicas > 0:
            status["phase"] = "Degraded"
        metrics.CANARY_WEIGHT.labels(self.namespace, self.name).set(status["canaryWeight"])
        self._put(status)

    def _analysis(
        self,
        decision: Decision,
        observed: Mapping[str, VariantMetrics | None],
        snapshot: Mapping[str, Mapping[str, Counters]] | None,
    ) -> dict[str, Any] | None:
        new = decision.state
        if new.phase == "Stable":
            return None
        analysis: dict[str, Any] = dict(self.status.get("analysis") or {})
        if decision.action == "start":
            analysis = {}
        if new.since is not None:
            analysis["time"] = rfc3339(new.since)
        analysis["step"] = new.step
        analysis["failures"] = new.failures
        if decision.verdict is not None:
            analysis["verdict"] = decision.verdict
            analysis["message"] = decision.message
            metrics.ANALYSIS_TOTAL.labels(decision.verdict).inc()
            for variant in ("stable", "canary"):
                measured = observed.get(variant)
                if measured is not None:
                    analysis[variant] = measured.to_status()
                else:
                    analysis.pop(variant, None)
        if decision.new_window:
            if snapshot is not None:
                analysis["snapshot"] = snapshot_to_status(snapshot)
            else:
                analysis.pop("snapshot", None)
        if new.phase in ("Promoted", "RolledBack"):
            analysis.pop("snapshot", None)
        return analysis

    def _url(self, spec: ModelDeploymentSpec, provider: str) -> str:
        hosts = spec.router.hosts or []
        if provider != "builtin" and hosts:
            return f"http://{hosts[0]}/v2/models/{self.name}"
        domain = self.settings.cluster_domain
        return f"http://{self.name}.{self.namespace}.svc.{domain}/v2/models/{self.name}"

    def _announce(self, decision: Decision) -> None:
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


def _utc(moment: float) -> Any:
    import datetime

    return datetime.datetime.fromtimestamp(moment, datetime.UTC)
