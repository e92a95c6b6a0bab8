"""ModelDeployment handlers: resolve -> decide -> build -> apply -> write.

One reconciliation: resolve the models, run the rollout state machine (reading the variants'
metrics when an analysis is due), apply the children, write the whole status. The logic is
pure and lives elsewhere (canary/, builders/, traffic/, status/modeldeployment.py); all
rollout state lives in the status, so a restarted operator carries on where it stopped.

When it runs: on a new spec (and at startup); every ``analysis_tick_seconds`` while a rollout
is under way or something is waited for; and, for an idle ModelDeployment
(:func:`mdstatus.idle`), only when a watch event says that one of its children or
TrainingJobs changed. An idle ModelDeployment costs no API request.
"""

from __future__ import annotations

import copy
import datetime
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import kopf
from pydantic import ValidationError

from mlops_operator import kube, metrics, schedule, webhooks
from mlops_operator.api import GROUP, VERSION
from mlops_operator.api.common import ModelRef
from mlops_operator.api.modeldeployment import ModelDeploymentSpec, Retraining
from mlops_operator.builders.modeldeployment import children, service_url, split_for
from mlops_operator.builders.serving import METRICS_PORT, ServingOptions
from mlops_operator.canary import Plan, decide, retraining
from mlops_operator.canary import handoff as handoffs
from mlops_operator.canary.commands import ANNOTATION, Command, CommandError, pending
from mlops_operator.canary.hooks import Kind as HookKind
from mlops_operator.canary.hooks import Outcome, payload
from mlops_operator.canary.machine import Decision, due, hooks_due
from mlops_operator.canary.notifications import event_of, generic
from mlops_operator.canary.resolve import ServedModel, Waiting, resolve
from mlops_operator.controllers import errors
from mlops_operator.controllers.children import MEMORY, Children, Memory, NameClash
from mlops_operator.controllers.errors import handling
from mlops_operator.controllers.wakeups import WakeQueue
from mlops_operator.manifests import describe
from mlops_operator.metrics_sources import Window, source_for, sources_for
from mlops_operator.metrics_sources.drift import stable_drift
from mlops_operator.notifier import NOTIFIER, Sink
from mlops_operator.objects import (
    LABEL_MANAGED_BY,
    LABEL_MODELDEPLOYMENT,
    LABEL_VARIANT,
    MANAGER,
    MODELDEPLOYMENT,
    POD,
    TRAININGJOB,
    VARIANTS,
    Kind,
    VariantName,
    owner_reference,
    router_name,
    selector,
    selector_string,
    variant_name,
)
from mlops_operator.settings import OperatorSettings, get_settings
from mlops_operator.status import modeldeployment as mdstatus
from mlops_operator.status.conditions import find, rfc3339
from mlops_operator.traffic.providers import PROVIDERS
from mlops_operator.traffic.router import RouterOptions
from mlops_operator.traffic.split import Split

KIND = "ModelDeployment"
RESOURCE = (GROUP, VERSION, "modeldeployments")
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
)
"""The child kinds watched (their events wake an idle ModelDeployment); ConfigMaps are not:
watching them would need read access to every ConfigMap of the cluster."""
CHILD_LABELS: dict[str, Any] = {LABEL_MANAGED_BY: MANAGER, LABEL_MODELDEPLOYMENT: kopf.PRESENT}
STATUS_CONFLICTS = 3
WAKE_DELAY = 1.0
"""Seconds from a watch event to the pass it asks for (the events of a burst make one)."""
WORKERS = 8
log = logging.getLogger(__name__)

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


class Client(Protocol):
    """What a reconciliation needs of the API (the kube module; a fake in unit tests)."""

    def get(self, kind_: Kind, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_(self, kind_: Kind, namespace: str, selector: str) -> list[dict[str, Any]]: ...
    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...
    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None: ...
    def delete(self, api_version: str, kind_name: str, namespace: str, name: str) -> bool: ...
    def replace_status(self, kind_: Kind, body: Mapping[str, Any]) -> None: ...


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


def _wake(key: tuple[str, str]) -> None:
    with handling(KIND):
        reconcile(*key)


WAKEUPS = WakeQueue("modeldeployment-wakeups", _wake, delay=WAKE_DELAY, workers=WORKERS)
"""Idle ModelDeployments woken by watch events of their children and TrainingJobs."""


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def changed(namespace: str | None, name: str, reason: str, body: kopf.Body, **_: Any) -> None:
    """The spec is new (or the operator restarted): reconcile; after an edit or a restart,
    drop what another provider or an autoscaler left (a new one has nothing to drop). A new
    one is taken as its watch event shows it (it has no status to be stale)."""
    first = reason == "create"
    with handling(KIND):
        invalid = reconcile(
            namespace or "default",
            name,
            cleanup=not first,
            body=copy.deepcopy(dict(body)) if first else None,
        )
    if invalid:
        raise kopf.PermanentError(invalid)


def _command_waiting(body: Mapping[str, Any]) -> bool:
    value = ((body.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    return bool(value) and value != mdstatus.handled_command(body.get("status"))


# An event handler, not an update handler: kopf leaves the annotations under its own storage
# prefix (mlops.dev/) out of what it diffs, so an update handler never saw a new command, and
# a command to an idle rollout (a retry after a rollback) waited for some child's event.
@kopf.on.event(*RESOURCE, when=lambda body, **_: _command_waiting(body))
def commanded(namespace: str | None, name: str, **_: Any) -> None:
    """A manual command (`mlops promote`, abort, retry, pause, resume): act on it now."""
    with handling(KIND):
        reconcile(namespace or "default", name)


@kopf.timer(
    *RESOURCE,
    interval=get_settings().analysis_tick_seconds,
    when=lambda body, **_: _ticking(body),
)
def tick(namespace: str | None, name: str, **_: Any) -> None:
    """A rollout under way (the analysis interval) or something waited for: reconcile."""
    with handling(KIND):
        reconcile(namespace or "default", name)


@dataclass(frozen=True)
class Summary:
    """What the watch events of children and TrainingJobs need to know of a ModelDeployment."""

    training_jobs: frozenset[str]
    selectors: tuple[Mapping[str, str], ...]

    def uses(self, trainingjob: str, labels: Mapping[str, str]) -> bool:
        if trainingjob in self.training_jobs:
            return True
        return any(all(labels.get(k) == v for k, v in s.items()) for s in self.selectors)


@kopf.index(*RESOURCE)
async def mlops_modeldeployments(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], Summary]:
    """Every ModelDeployment's summary, kept by kopf from the watch events."""
    spec = body.get("spec") or {}
    refs = [(spec.get(v) or {}).get("model") or {} for v in ("stable", "canary")]
    return {
        (namespace or "default", name): Summary(
            training_jobs=frozenset(r["trainingJob"] for r in refs if r.get("trainingJob")),
            selectors=tuple(
                dict((r.get("selector") or {}).get("matchLabels") or {})
                for r in refs
                if r.get("selector")
            ),
        )
    }


INDEX = "mlops_modeldeployments"
"""kopf hands every handler the index as a keyword argument of this name."""


def _ticking(body: Mapping[str, Any]) -> bool:
    """The timer runs once the first pass wrote a status that is not idle. A new
    ModelDeployment is the create handler's alone: a timer would add a pass of its own and
    kopf's finalizer (two more writes, and one more when the timer stops)."""
    return bool(body.get("status")) and not _idle(body)


def _idle(body: Mapping[str, Any]) -> bool:
    """Idle, and not watching its stable variant's drift (that is read every interval)."""
    if (body.get("spec") or {}).get("retraining"):
        return False
    return mdstatus.idle(body.get("status"), (body.get("metadata") or {}).get("generation"))


def _summary(index: kopf.Index[Any, Summary], namespace: str, name: str) -> Summary | None:
    return next(iter(index.get((namespace, name), ())), None)


async def child_event(event: kopf.RawEvent, **kwargs: Any) -> None:
    """A child went, was edited by someone else or its rollout moved: remember it, and
    reconcile its ModelDeployment (also when its timer runs: the pass under way may have read
    the child before this event and end idle, with no timer to look again). On the event
    loop, like every watch-event handler here: they only remember and queue, and must not
    wait behind the handler threads that talk to the API."""
    obj = event["object"]
    if not MEMORY.seen(event.get("type"), obj):
        return
    meta = obj["metadata"]
    namespace, owner = meta["namespace"], meta["labels"][LABEL_MODELDEPLOYMENT]
    if _summary(kwargs[INDEX], namespace, owner) is not None:
        WAKEUPS.add((namespace, owner))


for _resource in CHILD_RESOURCES:
    kopf.on.event(*_resource, labels=CHILD_LABELS, id=f"child-{_resource[2]}")(child_event)


@dataclass(frozen=True)
class _ModelView:
    """What ModelDeployments read of a TrainingJob: an event changing none of it is ignored."""

    phase: str | None
    digest: str | None
    completion: str | None


_trainingjob_views: dict[tuple[str, str], _ModelView] = {}


@kopf.on.event(GROUP, VERSION, "trainingjobs")
async def trainingjob_event(event: kopf.RawEvent, **kwargs: Any) -> None:
    """A TrainingJob's model may have changed: reconcile the ModelDeployments using it."""
    obj = event["object"]
    meta, status = obj["metadata"], obj.get("status") or {}
    key = (meta["namespace"], meta["name"])
    if event.get("type") == "DELETED":
        _trainingjob_views.pop(key, None)
    else:
        view = _ModelView(
            status.get("phase"),
            (status.get("model") or {}).get("digest"),
            status.get("completionTime"),
        )
        if _trainingjob_views.get(key) == view:
            return
        _trainingjob_views[key] = view
    labels = meta.get("labels") or {}
    for (namespace, name), store in list(kwargs[INDEX].items()):
        summary = next(iter(store), None)
        if namespace == key[0] and summary and summary.uses(key[1], labels):
            WAKEUPS.add((namespace, name))


def reconcile(
    namespace: str,
    name: str,
    *,
    cleanup: bool = False,
    client: Client | None = None,
    settings: OperatorSettings | None = None,
    now: float | None = None,
    memory: Memory | None = None,
    body: dict[str, Any] | None = None,
) -> str | None:
    """One pass over one ModelDeployment (read, unless its ``body`` is given); the problem
    when its spec is invalid.

    The memory of children is the process's own with the real client, a fresh one with any
    other (tests)."""
    with _lock(namespace, name):
        if memory is None:
            memory = MEMORY if client is None else Memory()
        client = client or cast(Client, kube)
        body = body or client.get(MODELDEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        pass_ = Reconciliation(client, body, settings or get_settings(), now or time.time(), memory)
        return pass_.run(cleanup)


class Reconciliation:
    """One pass over one ModelDeployment: the steps, each a call into pure code or the client."""

    def __init__(
        self,
        client: Client,
        body: dict[str, Any],
        settings: OperatorSettings,
        now: float,
        memory: Memory,
    ) -> None:
        self.client = client
        self.children = Children(
            client,
            memory,
            str(body["metadata"]["namespace"]),
            str(body["metadata"]["uid"]),
            fresh=not body.get("status"),
        )
        self.body = body
        self.settings = settings
        self.now = now
        self.name = str(body["metadata"]["name"])
        self.namespace = str(body["metadata"]["namespace"])
        self.status: dict[str, Any] = dict(body.get("status") or {})
        self.generation: int | None = body["metadata"].get("generation")
        self.called: list[dict[str, Any]] = []

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
        source = source_for(
            spec.analysis.metrics,
            self.settings.prometheus_selector,
            sources_for(PROVIDERS[self._provider(spec)].proves_source),
        )
        window = Window(
            self.namespace,
            self.name,
            since=state.since if state.since is not None else self.now - plan.interval,
            now=self.now,
            targets=self._targets,
            snapshot=mdstatus.snapshot_from_status(self.status),
        )
        command, problem = self._command()
        hooks = [webhooks.Hook.from_spec(hook) for hook in spec.webhooks or ()]
        kinds = hooks_due(plan, state, identity, self.now) if command is None else ()
        outcomes = self._call(hooks, kinds)
        analysing = command is None and due(plan, state, identity, self.now) and not state.gate
        reading = source.measure(window) if analysing else None
        measured = reading.metrics if reading else {}
        decision = decide(
            plan,
            state,
            identity,
            self.now,
            measured.get("canary"),
            baseline=measured.get("stable"),
            command=command,
            ready=mdstatus.canary_ready(self.status),
            hooks=outcomes,
        )
        problem = problem or decision.ignored
        replaced = stable.digest
        stable, promoted, handoff = self._promotion(decision, stable, canary, wanted_stable)
        snapshot = reading.snapshot if reading else None
        if decision.new_window and snapshot is None:
            snapshot = source.begin(window)
        active = canary is not None and decision.state.phase in mdstatus.ACTIVE
        try:
            serving, applied, handoff = self._serve(
                spec, decision, stable, canary, handoff, cleanup=cleanup
            )
        except NameClash as clash:
            self._clash(clash)
            return None
        except kube.KubeError as error:
            found = errors.problem(error)
            if found is None:
                raise
            self._hold(found)
            return None
        seen = mdstatus.Observation(
            decision=decision,
            stable=serving.stable,
            canary=canary,
            servers=_servers(self.name, spec, applied, active),
            entry_ready=_entry_ready(self.name, applied, PROVIDERS[self._provider(spec)].has_pods),
            url=service_url(self.name, self.namespace, spec, self._provider(spec), self._router()),
            shadow=spec.strategy == "shadow",
            wanted_stable_replicas=spec.stable.replicas,
            promoted=promoted,
            measured=reading.metrics if reading else None,
            snapshot=snapshot,
            canary_waiting=canary_pick if isinstance(canary_pick, Waiting) else None,
            metrics_problem=reading.problem if reading else None,
            replaced=replaced,
            command=self._annotation() if command or problem else None,
            command_problem=problem,
        )
        self._write(spec, seen, hooks, problem, handoff)
        return None

    def _serve(
        self,
        spec: ModelDeploymentSpec,
        decision: Decision,
        stable: ServedModel,
        canary: ServedModel | None,
        handoff: handoffs.Handoff | None,
        *,
        cleanup: bool,
    ) -> tuple[Serving, dict[tuple[str, str], dict[str, Any]], handoffs.Handoff | None]:
        """Applies the children of the decision, or of the hand-off's stage: a stage whose
        children settled at once (nothing to roll) is followed by the next in the same pass."""
        for _ in handoffs.STAGES:
            serving = _serving(spec, decision, stable, canary, handoff)
            applied, settled = self._apply(spec, serving, cleanup, watch=handoff is not None)
            if handoff is None:
                break
            deployment = applied.get(("Deployment", variant_name(self.name, "stable")))
            seen = handoffs.Seen(settled, rolled_out(deployment))
            after = handoffs.advance(handoff, seen, self.now)
            moved = after is None or after.stage != handoff.stage
            handoff = after
            if not moved or handoff is None:
                break
        return serving, applied, handoff

    def _promotion(
        self,
        decision: Decision,
        stable: ServedModel,
        canary: ServedModel | None,
        wanted_stable: ServedModel | Waiting,
    ) -> tuple[ServedModel, Mapping[str, Any] | None, handoffs.Handoff | None]:
        """The stable variant's model after this decision, status.promoted, and the
        promotion's hand-off under way (begun by a promotion, over once it ends or a new
        rollout, or none, starts)."""
        promoted = self.status.get("promoted")
        handoff = mdstatus.handoff_from_status(self.status)
        if decision.action == "promote" and canary is not None:
            replaces = wanted_stable.digest if isinstance(wanted_stable, ServedModel) else None
            promoted = {**mdstatus.served(canary), "replaces": replaces}
            handoff = handoffs.begin(stable, self.now, mdstatus.canary_ready(self.status))
            return canary, promoted, handoff
        if decision.action != "done" or decision.state.phase != "Promoted" or canary is None:
            handoff = None
        return stable, promoted, handoff

    def _write(
        self,
        spec: ModelDeploymentSpec,
        seen: mdstatus.Observation,
        hooks: list[webhooks.Hook],
        problem: str | None,
        handoff: handoffs.Handoff | None,
    ) -> None:
        """The status (after the post-rollout hooks and any retraining), Events, notices."""
        decision = seen.decision
        status = mdstatus.compose(self.status, self.generation, seen, self.now)
        status = mdstatus.with_handoff(status, self.generation, handoff, self.now)
        if decision.action in ("promote", "rollback"):
            self._call(hooks, ("post-rollout",), status)
        status = mdstatus.with_webhooks(status, self.called, self.now)
        if spec.retraining is not None and decision.state.phase not in mdstatus.ACTIVE:
            status = self._retrain(spec, spec.retraining, status)
        self._put(status)
        self._announce(decision, status)
        self._warn_once(status, mdstatus.METRICS_UNAVAILABLE)
        self._notify(spec, decision, status)
        if problem:
            self._event("Warning", "CommandIgnored", problem)

    def _hold(self, found: errors.Problem) -> None:
        """A child the API server will not take: what is served stays as it is (a rollout
        holds at its step), Degraded says why; the Event and the log line only when new."""
        status = mdstatus.degraded(
            self.status, self.generation, found.reason, found.message, self.now
        )
        if self._put(status):
            log.warning("%s/%s: %s: %s", self.namespace, self.name, found.reason, found.message)
            self._event("Warning", found.reason, found.message)

    def _warn_once(self, status: Mapping[str, Any], reason: str) -> None:
        """A Warning Event when Degraded has just become ``reason``."""
        now = find(status.get("conditions"), "Degraded") or {}
        before = find(self.status.get("conditions"), "Degraded") or {}
        if (now.get("status"), now.get("reason")) != ("True", reason):
            return
        if (before.get("status"), before.get("reason")) == ("True", reason):
            return
        self._event("Warning", reason, str(now.get("message")))

    def _clash(self, clash: NameClash) -> None:
        """Degraded (NameClash) naming the object; a Warning Event when that is new."""
        status = mdstatus.degraded(self.status, self.generation, "NameClash", str(clash), self.now)
        if self._put(status):
            log.warning("%s/%s: %s", self.namespace, self.name, clash)
            self._event("Warning", "NameClash", str(clash))

    def _call(
        self,
        hooks: list[webhooks.Hook],
        kinds: tuple[HookKind, ...],
        status: Mapping[str, Any] | None = None,
    ) -> dict[HookKind, Outcome]:
        """Calls the webhooks of each kind; their outcomes (the results go to the status)."""
        outcomes: dict[HookKind, Outcome] = {}
        for kind in kinds:
            body = payload(self.name, self.namespace, kind, status or self.status)
            outcomes[kind], results = webhooks.run(hooks, kind, body)
            self.called += webhooks.statuses(results)
            for result in results:
                if not result.ok:
                    self._event("Warning", "WebhookFailed", result.message)
        return outcomes

    def _retrain(
        self, spec: ModelDeploymentSpec, policy_spec: Retraining, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Reads the stable variant's drift when due; sustained drift starts a run."""
        policy = retraining.Policy.from_spec(policy_spec)
        before = mdstatus.drift_state(self.status)
        if not retraining.due(policy, before, self.now):
            return status
        psi = stable_drift(
            spec.analysis.metrics,
            self.settings.prometheus_selector,
            namespace=self.namespace,
            name=self.name,
            urls=self._targets().get("stable", {}).values(),
            at=self.now,
        )
        judged = retraining.judge(policy, before, psi, self.now)
        state = judged.state
        if judged.retrain:
            parent_name = policy_spec.training_job or spec.stable.model.training_job or ""
            state = self._start_run(parent_name, state, before)
        return mdstatus.with_retraining(status, state)

    def _start_run(
        self, parent_name: str, state: retraining.DriftState, before: retraining.DriftState
    ) -> retraining.DriftState:
        why = state.message or "drift"
        parent = self.client.get(TRAININGJOB, self.namespace, parent_name)
        if parent is None:
            message = f"retraining: TrainingJob {parent_name} not found ({why})"
            self._event("Warning", "RetrainingFailed", message)
            return replace(state, triggered=before.triggered, runs=before.runs, message=message)
        moment = datetime.datetime.fromtimestamp(self.now, datetime.UTC)
        run = schedule.retraining_run(parent, moment, mdep=self.name, why=why)
        name = run["metadata"]["name"]
        self.client.create(run)
        message = f"started run {name} of {parent_name}: {why}"
        self._event("Normal", "RetrainingStarted", message)
        metrics.RETRAINING_RUNS.labels(self.namespace, self.name).inc()
        return replace(state, run=name, message=message)

    def _notify(
        self, spec: ModelDeploymentSpec, decision: Decision, status: Mapping[str, Any]
    ) -> None:
        """Queues the decision's notification for the operator's sinks and the spec's."""
        event = event_of(decision)
        configured = (*self.settings.notifications, *(spec.notifications or ()))
        if event is None or not configured:
            return
        body = generic(
            self.name, self.namespace, event, decision, status=status, time=rfc3339(self.now)
        )
        NOTIFIER.send([Sink.from_spec(sink) for sink in configured], event, body)

    def _annotation(self) -> str | None:
        return (self.body["metadata"].get("annotations") or {}).get(ANNOTATION)

    def _command(self) -> tuple[Command | None, str | None]:
        """The manual command not handled yet, or why the annotation is no command."""
        try:
            annotations = self.body["metadata"].get("annotations")
            return pending(annotations, mdstatus.handled_command(self.status)), None
        except CommandError as error:
            return None, str(error)

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
                targets[variant][pod["metadata"]["name"]] = f"http://{ip}:{METRICS_PORT}/metrics"
        return targets

    def _apply(
        self, spec: ModelDeploymentSpec, serving: Serving, cleanup: bool, *, watch: bool
    ) -> tuple[dict[tuple[str, str], dict[str, Any]], bool]:
        """Applies the children; deletes what must go. The children as stored, by kind and
        name, and whether the route settled (every router runs it, no older one is left: read
        only when it matters, ``watch`` or a canary child to delete)."""
        provider = self._provider(spec)
        wanted = children(
            self.name,
            self.namespace,
            spec,
            provider=provider,
            stable=serving.stable,
            canary=serving.canary,
            split=serving.split,
            serving=ServingOptions(
                image=self.settings.model_server_image,
                image_pull_policy=self.settings.image_pull_policy,
                pvc_root=self.settings.pvc_root,
            ),
            router=self._router(),
            feedback_token=secrets.token_urlsafe(32),
            router_token=secrets.token_urlsafe(32),
            metrics_from=self.settings.metrics_from,
            retired=serving.retired,
        )
        self.children.none_yet([*wanted.delete, *wanted.delete_canary])
        owner = owner_reference(KIND, self.body["metadata"])
        for obj in wanted.create:
            obj["metadata"]["ownerReferences"] = [owner]
            self.children.create(obj)  # never rewritten: the token stays
        applied: dict[tuple[str, str], dict[str, Any]] = {}
        for obj in wanted.apply:
            obj["metadata"]["ownerReferences"] = [owner]
            applied[obj["kind"], obj["metadata"]["name"]] = self.children.apply(obj)
        gone = list(wanted.delete) if cleanup else []
        leftover = [ref for ref in wanted.delete_canary if self.children.ours(*ref)]
        settled = False
        if watch or leftover:
            chosen = PROVIDERS[provider]
            pods = self._router_pods() if chosen.has_pods else []
            desired = {(o["kind"], o["metadata"]["name"]): o for o in wanted.apply}
            settled = chosen.settled(self.name, desired, applied, pods)
        if leftover and settled:
            gone += leftover
        for api_version, kind_name, child in gone:
            self.children.delete(api_version, kind_name, child)
        return applied, settled

    def _router_pods(self) -> list[dict[str, Any]]:
        return self.client.list_(
            POD, self.namespace, selector_string(selector(self.name, "router"))
        )

    def _put(self, status: dict[str, Any]) -> bool:
        """Replaces the status unless it is unchanged (True when it wrote); on a conflict
        reads again, unless the spec changed meanwhile (the next pass decides again)."""
        status = mdstatus.pruned({**status, "observedGeneration": self.generation})
        if status == (self.body.get("status") or {}):
            return False
        for _ in range(STATUS_CONFLICTS):
            try:
                self.client.replace_status(MODELDEPLOYMENT, {**self.body, "status": status})
                return True
            except kube.Conflict:
                fresh = self.client.get(MODELDEPLOYMENT, self.namespace, self.name)
                if fresh is None or fresh["metadata"].get("generation") != self.generation:
                    return False
                self.body = fresh
        return False

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
        kind = "Warning" if decision.action == "rollback" else "Normal"
        self._event(kind, decision.reason, decision.message)

    def _event(self, kind: str, reason: str, message: str) -> None:
        ref = kopf.Body(cast(kopf.RawBody, dict(self.body)))
        kopf.event(ref, type=kind, reason=reason, message=message[:1000])


@dataclass(frozen=True)
class Serving:
    """What the children serve in this pass."""

    stable: ServedModel
    canary: ServedModel | None
    """The canary's model while its servers stay (they get traffic, or take feedback only)."""
    split: Split
    retired: bool = False
    """The canary's servers take feedback only."""


def _serving(
    spec: ModelDeploymentSpec,
    decision: Decision,
    stable: ServedModel,
    canary: ServedModel | None,
    handoff: handoffs.Handoff | None,
) -> Serving:
    """What the children serve: the decision's split (the canary while its phase gives it
    traffic), or the stage of a promotion's hand-off (mlops_operator.canary.handoff; the
    canary's model is then the promoted one)."""
    if handoff is None or canary is None:
        active = canary is not None and decision.state.phase in mdstatus.ACTIVE
        live = canary if active else None
        return Serving(stable, live, split_for(spec, active, decision.state.weight))
    stage = handoffs.SERVING[handoff.stage]
    served = handoff.previous if stage.stable_previous else stable
    if stage.canary_weight is not None:
        return Serving(served, canary, Split(canary_weight=stage.canary_weight, canary=True))
    if stage.canary_retired:
        return Serving(served, canary, Split(), retired=True)
    return Serving(served, None, Split())


def rolled_out(deployment: Mapping[str, Any] | None) -> bool:
    """Every replica of the Deployment runs its newest template and is ready."""
    if deployment is None:
        return False
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    return bool(
        status.get("observedGeneration", 0)
        >= (deployment.get("metadata") or {}).get("generation", 0)
        and int(status.get("updatedReplicas") or 0) == wanted
        and int(status.get("replicas") or 0) == wanted
        and int(status.get("readyReplicas") or 0) >= wanted
    )


def _entry_ready(
    name: str, applied: Mapping[tuple[str, str], Mapping[str, Any]], has_pods: bool
) -> bool:
    """Requests to the entry get through: a router Pod is ready (providers without Pods of
    their own: always)."""
    if not has_pods:
        return True
    deployment = applied.get(("Deployment", router_name(name))) or {}
    return int((deployment.get("status") or {}).get("readyReplicas") or 0) > 0


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
