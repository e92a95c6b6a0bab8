"""One ModelDeployment on this machine: its model servers, its router, and its rollout driven
by the operator's state machine from the servers' real metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from mlops_operator.api import ModelDeployment
from mlops_operator.api.common import ModelRef
from mlops_operator.builders.modeldeployment import split_for
from mlops_operator.canary import Decision, Plan, RolloutState, VariantMetrics, decide
from mlops_operator.canary.machine import due
from mlops_operator.canary.metrics import Counters, summarize, total
from mlops_operator.canary.resolve import ServedModel, Waiting, resolve
from mlops_operator.local.home import Home
from mlops_operator.local.processes import stop
from mlops_operator.local.serving import ModelServer, Router, ServingError, start_model_server
from mlops_operator.metrics_sources import BuiltinSource, Window
from mlops_operator.objects import VariantName
from mlops_operator.status.modeldeployment import Observation, Servers, compose
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
    ) -> None:
        self.home = home
        self.deployment = deployment
        self.name = deployment.metadata.name
        self.plan = Plan.from_spec(deployment.spec)
        self.log = log
        self.router = Router(home, self.name, router_port)
        self.source = BuiltinSource(timeout=2.0)
        self.state = RolloutState()
        self.snapshot: dict[str, dict[str, Counters]] = {}
        self.stable: ModelServer | None = None
        self.canary: ModelServer | None = None
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
        return plan.strategy == "canary" and plan.canary_weight is None

    @property
    def finished(self) -> bool:
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
        return start_model_server(
            self.home,
            self.name,
            variant,
            model=model.name or model.uri,
            uri=model.uri,
            digest=model.digest,
        )

    def _route(self) -> None:
        assert self.stable is not None
        split = traffic_split(self.deployment, self.state, self.canary is not None)
        self.router.configure(split, self.stable, self.canary)

    def _targets(self) -> dict[str, dict[str, str]]:
        servers = {"stable": self.stable, "canary": self.canary}
        return {v: {s.address: s.metrics_url} for v, s in servers.items() if s is not None}

    def tick(self, now: float | None = None) -> Decision:
        """One turn of the rollout: measure when an analysis is due, decide, act."""
        now = time.time() if now is None else now
        canary_id = self.canary_model.digest if self.canary_model else None
        window = Window(
            "local",
            self.name,
            since=self.state.since if self.state.since is not None else now,
            now=now,
            targets=self._targets,
            snapshot=self.snapshot,
        )
        due_now = due(self.plan, self.state, canary_id, now)
        reading = self.source.measure(window) if due_now else None
        measured = reading.metrics if reading else {}
        decision = decide(
            self.plan,
            self.state,
            canary_id,
            now,
            measured.get("canary"),
            baseline=measured.get("stable"),
        )
        if decision.new_window:
            begun = reading.snapshot if reading else self.source.begin(window)
            self.snapshot = begun or {}
        self._act(decision)
        self.state = decision.state
        self._write(decision, reading.metrics if reading else None, now)
        if decision.verdict in ("Passed", "Failed"):
            self.judged += 1
        if decision.transition or decision.verdict:
            self.log(f"{self.name}: {decision.reason}: {decision.message}")
        self._route()
        return decision

    def _act(self, decision: Decision) -> None:
        """Promotion: a new stable server with the canary's model takes all traffic; the old
        servers go. Rollback: the canary goes."""
        if decision.action == "promote" and self.canary is not None:
            assert self.canary_model is not None
            assert self.stable is not None
            retired = [self.stable, self.canary]
            self.stable, self.canary = self._serve("stable", self.canary_model), None
            self.stable.wait_until_ready()
            self.stable_model = self.canary_model
        elif decision.action in ("rollback", "stable") and self.canary is not None:
            retired, self.canary = [self.canary], None
        else:
            return
        self.state = decision.state
        self._route()
        for server in retired:
            stop(server.child)

    def stop(self) -> None:
        for server in (self.canary, self.stable):
            if server is not None:
                stop(server.child)
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
