"""One ModelDeployment on this machine: its model servers, its router, and its rollout driven
by the operator's state machine from the servers' real metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, cast

from mlops_operator import webhooks
from mlops_operator.api import ModelDeployment
from mlops_operator.api.common import ModelRef
from mlops_operator.builders.modeldeployment import split_for
from mlops_operator.builders.serving import agreement_env, explain_env
from mlops_operator.canary import Decision, Plan, RolloutState, VariantMetrics, decide
from mlops_operator.canary.handoff import FEEDBACK_GRACE_SECONDS
from mlops_operator.canary.hooks import Kind as HookKind
from mlops_operator.canary.hooks import Outcome, payload
from mlops_operator.canary.machine import due, hooks_due
from mlops_operator.canary.metrics import Counters, summarize, total
from mlops_operator.canary.notifications import event_of, generic
from mlops_operator.canary.resolve import ServedModel, Waiting, resolve
from mlops_operator.canary.retraining import DriftState, Policy, judge
from mlops_operator.canary.retraining import due as drift_due
from mlops_operator.local.home import Home
from mlops_operator.local.processes import stop
from mlops_operator.local.serving import ModelServer, Router, ServingError, start_model_server
from mlops_operator.metrics_sources import BuiltinSource, Window, sources_for
from mlops_operator.metrics_sources.drift import scraped
from mlops_operator.notifier import NOTIFIER, Sink
from mlops_operator.objects import VariantName
from mlops_operator.status.conditions import rfc3339
from mlops_operator.status.modeldeployment import Observation, Servers, compose, with_retraining
from mlops_operator.traffic.providers import PROVIDERS
from mlops_operator.traffic.split import Split

FINAL_PHASES = ("Promoted", "RolledBack")


def traffic_split(deployment: ModelDeployment, state: RolloutState, canary: bool) -> Split:
    """How the router splits requests for this rollout state (as the operator's router)."""
    live = canary and state.phase in ("Progressing", "Paused")
    return split_for(deployment.spec, live, state.weight)


def resolve_local(
    ref: ModelRef, trainingjobs: Mapping[str, Mapping[str, Any]]
) -> ServedModel | Waiting:
    """A model reference against the TrainingJobs trained in this run."""
    selected: Iterable[Mapping[str, Any]] = ()
    if ref.selector is not None:
        wanted = ref.selector.match_labels.items()
        selected = [
            body
            for body in trainingjobs.values()
            if wanted <= body["metadata"].get("labels", {}).items()
        ]
    named = trainingjobs.get(ref.training_job or "")
    return resolve(ref, named, selected)


RETIRE_SECONDS = FEEDBACK_GRACE_SECONDS
"""How long a replaced server keeps taking feedback before it stops (a client sends the
feedback of a prediction right after its answer, or the remembered id is long gone)."""


class LocalRollout:
    """The servers, router and rollout state of one ModelDeployment."""

    def __init__(
        self,
        home: Home,
        deployment: ModelDeployment,
        trainingjobs: Mapping[str, Mapping[str, Any]],
        router_port: int,
        log: Callable[[str], None],
        *,
        analyses: int = 3,
        interval: float | None = None,
        retrain: Callable[[str, str], ServedModel | None] | None = None,
    ) -> None:
        self.home = home
        self.retrain = retrain
        """Trains a run of a TrainingJob (its name, why) and returns its model."""
        self.retrained = False
        self.drift = DriftState()
        self.deployment = deployment
        self.name = deployment.metadata.name
        self.plan = Plan.from_spec(deployment.spec)
        if interval is not None:
            self.plan = replace(self.plan, interval=interval)
        self.log = log
        self.router = Router(home, self.name, router_port)
        # The local router is the builtin one, with its proof (local.serving.Router).
        proves = PROVIDERS["builtin"].proves_source
        self.source = BuiltinSource(timeout=2.0, sources=sources_for(proves))
        self.state = RolloutState()
        self.snapshot: dict[str, dict[str, Counters]] = {}
        self.stable: ModelServer | None = None
        self.canary: ModelServer | None = None
        self.retiring: list[ModelServer] = []
        """Servers a promotion or rollback replaced: they stop RETIRE_SECONDS later, and take
        feedback meanwhile for the predictions they made just before the switch."""
        self.retire_at = 0.0
        self.doc: dict[str, Any] = {}
        self.analyses = analyses
        """Judged intervals after which a rollout that never ends by itself is done."""
        self.judged = 0
        self.stable_model = self._model("stable", deployment.spec.stable.model, trainingjobs)
        canary = deployment.spec.canary
        self.canary_model = self._model("canary", canary.model, trainingjobs) if canary else None

    def _model(
        self, variant: str, ref: ModelRef, trainingjobs: Mapping[str, Mapping[str, Any]]
    ) -> ServedModel | None:
        found = resolve_local(ref, trainingjobs)
        if isinstance(found, Waiting):
            self.log(f"{self.name}: the {variant} model is not available: {found.message}")
            return None
        return found

    @property
    def ends_by_itself(self) -> bool:
        """A canary with steps is promoted or rolled back; abTest (unless promote is set),
        shadow and a fixed canaryWeight are judged for as long as they run."""
        plan = self.plan
        if plan.strategy == "abTest":
            return plan.ab_promote
        if plan.strategy == "blueGreen":
            return plan.auto_promote
        return plan.strategy == "canary" and plan.canary_weight is None

    @property
    def finished(self) -> bool:
        if self.deployment.spec.retraining is not None and not self.retrained:
            return False  # drift-triggered retraining: waits for the drift
        if self.state.phase in FINAL_PHASES:
            return True
        if self.canary_model is None:
            return self.state.phase == "Stable"
        return not self.ends_by_itself and self.judged >= self.analyses

    def start(self) -> None:
        if self.stable_model is None:
            raise ServingError(f"{self.name}: no stable model to serve (see the line above)")
        self.stable = self._serve("stable", self.stable_model)
        if self.canary_model is not None:
            self.canary = self._serve("canary", self.canary_model)
        for server in (self.stable, self.canary):
            if server is not None:
                server.wait_until_ready()
        self._route()

    def _serve(self, variant: str, model: ServedModel) -> ModelServer:
        self.log(f"{self.name}: starting the {variant} model server ({model.name})")
        whole = self.deployment.spec
        spec = whole.stable if variant == "stable" else whole.canary
        shadow = variant == "canary" and whole.strategy == "shadow"
        reference = self.stable_model if shadow else None
        env = explain_env(spec) if spec is not None else {}
        return start_model_server(
            self.home,
            self.name,
            variant,
            model=model.name or model.uri,
            uri=model.uri,
            digest=model.digest,
            env={
                **env,
                **agreement_env(reference, whole.analysis.agreement_tolerance),
                "MLOPS_ROUTER_TOKEN": self.router.token,
            },
        )

    def _route(self) -> None:
        assert self.stable is not None
        split = traffic_split(self.deployment, self.state, self.canary is not None)
        self.router.configure(split, self.stable, self.canary, self.retiring)

    def _retire(self, retired: list[ModelServer]) -> None:
        """Off the split now; stopped (and off the feedback) once RETIRE_SECONDS have passed."""
        self.retiring += retired
        self.retire_at = time.monotonic() + RETIRE_SECONDS

    def _stop_retired(self) -> None:
        if self.retiring and time.monotonic() >= self.retire_at:
            retired, self.retiring = self.retiring, []
            self._route()
            for server in retired:
                stop(server.child)

    def _targets(self) -> dict[str, dict[str, str]]:
        servers = {"stable": self.stable, "canary": self.canary}
        return {v: {s.address: s.metrics_url} for v, s in servers.items() if s is not None}

    def tick(self, now: float | None = None) -> Decision:
        """One turn of the rollout: measure when an analysis is due, decide, act."""
        now = time.time() if now is None else now
        self._stop_retired()
        canary_id = self.canary_model.digest if self.canary_model else None
        window = Window(
            "local",
            self.name,
            since=self.state.since if self.state.since is not None else now,
            now=now,
            targets=self._targets,
            snapshot=self.snapshot,
        )
        kinds = hooks_due(self.plan, self.state, canary_id, now)
        outcomes = {kind: self._call(kind) for kind in kinds}
        due_now = due(self.plan, self.state, canary_id, now) and not self.state.gate
        reading = self.source.measure(window) if due_now else None
        measured = reading.metrics if reading else {}
        decision = decide(
            self.plan,
            self.state,
            canary_id,
            now,
            measured.get("canary"),
            baseline=measured.get("stable"),
            hooks=outcomes,
        )
        if decision.new_window:
            begun = reading.snapshot if reading else self.source.begin(window)
            self.snapshot = begun or {}
        self._act(decision)
        self.state = decision.state
        self._write(decision, reading.metrics if reading else None, now)
        if decision.action in ("promote", "rollback"):
            self._call("post-rollout")
        self._notify(decision, now)
        self._check_drift(now)
        if decision.verdict in ("Passed", "Failed"):
            self.judged += 1
        if decision.transition or decision.verdict:
            self.log(f"{self.name}: {decision.reason}: {decision.message}")
        self._route()
        return decision

    def _call(self, kind: HookKind) -> Outcome:
        """The spec's webhooks of one kind, as the operator calls them."""
        hooks = [webhooks.Hook.from_spec(hook) for hook in self.deployment.spec.webhooks or ()]
        body = payload(self.name, "local", kind, self.doc)
        outcome, results = webhooks.run(hooks, kind, body)
        for result in results:
            self.log(f"{self.name}: webhook {result.message}")
        return outcome

    def _check_drift(self, now: float) -> None:
        """spec.retraining, as the operator does it: sustained drift on the stable server
        trains one run of its TrainingJob here, whose model then canaries."""
        spec = self.deployment.spec.retraining
        active = self.state.phase in ("Progressing", "Paused")
        if spec is None or self.retrain is None or self.retrained or active or not self.stable:
            return
        policy = Policy.from_spec(spec)
        if not drift_due(policy, self.drift, now):
            return
        judged = judge(policy, self.drift, scraped([self.stable.metrics_url]), now)
        self.drift = judged.state
        if judged.retrain:
            parent = spec.training_job or self.deployment.spec.stable.model.training_job or ""
            model = self.retrain(parent, judged.state.message or "drift")
            if model is not None:
                self.retrained = True
                self.drift = replace(
                    self.drift,
                    run=model.name,
                    message=f"started run {model.name} of {parent}: {judged.state.message}",
                )
                self.canary_model = model
                self.canary = self._serve("canary", model)
                self.canary.wait_until_ready()
        self.doc = with_retraining(self.doc, self.drift)

    def _notify(self, decision: Decision, now: float) -> None:
        event = event_of(decision)
        sinks = self.deployment.spec.notifications or ()
        if event is None or not sinks:
            return
        body = generic(self.name, "local", event, decision, status=self.doc, time=rfc3339(now))
        NOTIFIER.send([Sink.from_spec(sink) for sink in sinks], event, body)

    def _act(self, decision: Decision) -> None:
        """Promotion: a new stable server with the canary's model takes all traffic; the old
        servers go. Rollback: the canary goes."""
        if decision.action == "promote" and self.canary is not None:
            assert self.canary_model is not None
            assert self.stable is not None
            retired = [self.stable, self.canary]
            promoted = self._serve("stable", self.canary_model)
            promoted.wait_until_ready()
            # First the new server joins the feedback pool, no prediction to it yet: nginx's
            # reload lets the old workers take connections for a moment beside the new ones,
            # so a prediction the switched configuration makes may get its feedback from a
            # worker of the one before it (the soak counted one such 404).
            self.router.configure(
                traffic_split(self.deployment, self.state, True),
                self.stable,
                self.canary,
                [*self.retiring, promoted],
            )
            self.stable, self.canary = promoted, None
            self.stable_model = self.canary_model
        elif decision.action in ("rollback", "stable") and self.canary is not None:
            retired, self.canary = [self.canary], None
        else:
            return
        self.state = decision.state
        self._retire(retired)
        self._route()

    def stop(self) -> None:
        for server in (self.canary, self.stable, *self.retiring):
            if server is not None:
                stop(server.child)
        self.retiring = []
        if self.router.child is not None:
            stop(self.router.child)

    def _write(
        self, decision: Decision, measured: dict[str, VariantMetrics | None] | None, now: float
    ) -> None:
        """The status as the operator composes it, from this machine's servers."""
        servers = {
            variant: Servers(1, 1 if server.child.alive() else 0)
            for variant, server in (("stable", self.stable), ("canary", self.canary))
            if server is not None
        }
        assert self.stable_model is not None
        seen = Observation(
            decision=decision,
            stable=self.stable_model,
            canary=self.canary_model if self.canary is not None else None,
            servers=cast(dict[VariantName, Servers], servers),
            url=f"{self.router.url}/v2/models/{self.name}",
            shadow=self.deployment.spec.strategy == "shadow",
            measured=measured,
        )
        self.doc = compose(self.doc, None, seen, now)

    def served(self) -> dict[str, Any]:
        """Each live variant's numbers since its server started (what `status` shows when no
        analysis has judged it, e.g. a stable-only deployment)."""
        now = self.source.snapshot(self._targets())
        return {
            variant: summarize(total(list(servers.values()))).to_status()
            for variant, servers in now.items()
            if servers
        }

    def status(self) -> dict[str, Any]:
        """The ModelDeployment status, as the operator would write it."""
        return self.doc
