"""`mlops local up`: train, serve, route and roll out, all on this machine."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live

from mlops_operator import manifests
from mlops_operator.api import ModelDeployment, TrainingJob, TrainingJobSpec
from mlops_operator.api.common import ObjectMeta
from mlops_operator.canary.resolve import ServedModel
from mlops_operator.local import display
from mlops_operator.local.home import MAX_EVENTS, Home, now
from mlops_operator.local.loadgen import LoadGenerator, Rows, shifted
from mlops_operator.local.processes import pid_alive, running
from mlops_operator.local.rollout import LocalRollout
from mlops_operator.local.serving import ServingError, free_port
from mlops_operator.local.training import train
from mlops_operator.objects import LABEL_SCHEDULED_BY
from mlops_operator.traffic.split import OVERRIDE_HEADER
from trainer import data as training_data

TICK_SECONDS = 0.5
SERVED_EVERY = 2.0
"""Seconds between reads of the servers' own counters for `status`."""
EXIT_OK, EXIT_ERROR, EXIT_ROLLED_BACK = 0, 1, 2


class LocalError(Exception):
    """The local run cannot go on; the message says why and what to do."""


class Stopped(Exception):
    """SIGTERM or SIGINT: stop everything and exit."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Runner:
    def __init__(
        self,
        home: Home,
        paths: Sequence[Path],
        *,
        traffic: float = 0.0,
        watch: bool = False,
        analyses: int = 3,
        drift_after: float | None = None,
        interval: float | None = None,
        console: Console | None = None,
    ) -> None:
        self.home = home
        self.paths = paths
        self.traffic = traffic
        self.watch = watch
        self.analyses = analyses
        self.drift_after = drift_after
        self.interval = interval
        """Seconds per analysis interval instead of the manifests' (None: theirs)."""
        self.console = console or Console()
        self.live: Live | None = None
        self.state: dict[str, Any] = {}
        self.rollouts: list[LocalRollout] = []
        self.loads: list[LoadGenerator] = []
        self.trained: dict[str, dict[str, Any]] = {}
        self.earlier: dict[str, dict[str, Any]] = {}
        """TrainingJobs trained by an earlier run in this home, by name."""

    def up(self) -> int:
        resources = manifests.load(self.paths)
        self._claim_home()
        jobs = [r for r in resources if isinstance(r, TrainingJob)]
        deployments = [r for r in resources if isinstance(r, ModelDeployment)]
        try:
            with stop_on_signals(), self._display():
                self._train_all(jobs)
                if any(j["status"]["phase"] != "Succeeded" for j in self.trained.values()):
                    self.event("a TrainingJob failed: nothing more to do")
                    return EXIT_ERROR
                self._serve_all(deployments, jobs)
                return self._roll_out()
        except Stopped as why:
            self.event(f"stopped by {why}")
            return EXIT_OK
        except ServingError as error:
            self.event(f"error: {error}")
            return EXIT_ERROR
        finally:
            self._shutdown()

    # The state file, shared with `status` and `down` in other terminals.

    def _claim_home(self) -> None:
        previous = self.home.read_state()
        if previous and previous.get("pid") and pid_alive(previous["pid"]):
            raise LocalError(
                f"another `mlops local up` (pid {previous['pid']}) uses {self.home.root}: "
                "run `mlops local down` first, or pass another --home"
            )
        self.home.prepare()
        self.earlier = {
            name: entry
            for name, entry in ((previous or {}).get("trainingJobs") or {}).items()
            if entry.get("phase") == "Succeeded" and entry.get("model") and entry.get("spec")
        }
        self.state = {
            "pid": os.getpid(),
            "started": now(),
            "home": str(self.home.root),
            "trainingJobs": {},
            "modelDeployments": {},
            "processes": {},
            "events": [],
        }
        self.save()

    def save(self) -> None:
        self.state["processes"] = running()
        for rollout in self.rollouts:
            self.state["modelDeployments"].setdefault(rollout.name, {})["status"] = rollout.status()
        for load in self.loads:
            tally = load.tally
            self.state["modelDeployments"][load.model]["traffic"] = {
                "sent": tally.sent,
                "failed": tally.failed,
                "byVariant": dict(tally.by_variant),
            }
        self.home.write_state(self.state)
        if self.live is not None:
            self.live.update(display.render(self.state))

    def event(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        self.state["events"] = [*self.state.get("events", []), line][-MAX_EVENTS:]
        if self.live is None:
            self.console.print(line, highlight=False, markup=False)
        self.save()

    @contextmanager
    def _display(self) -> Iterator[None]:
        if not self.console.is_terminal:
            yield
            return
        with Live(display.render(self.state), console=self.console, refresh_per_second=4) as live:
            self.live = live
            try:
                yield
            finally:
                self.live = None
        self.console.print(display.render(self.state))

    # Training, serving, rolling out.

    def _train_all(self, jobs: Sequence[TrainingJob]) -> None:
        for job in jobs:
            name = job.metadata.name
            entry: dict[str, Any] = {"phase": "Running", "message": "starting"}
            self.state["trainingJobs"][name] = entry
            if job.spec.schedule:
                self.event(f"{name}: schedule {job.spec.schedule!r} is ignored locally: one run")
            self.event(f"{name}: training {job.spec.model.estimator}")

            def progress(line: str, entry: dict[str, Any] = entry) -> None:
                entry["message"] = line[-120:]
                self.save()

            result = train(job, self.home, progress)
            entry.update(
                phase=result.phase,
                score=result.score,
                message=result.message,
                metrics=result.metrics,
            )
            if result.search is not None:
                entry["search"] = result.search.dump()
            if result.model is not None:
                entry["model"] = result.model.model_dump()
                entry["spec"] = job.spec.dump()
            self.trained[name] = {
                "metadata": {"name": name, "labels": job.metadata.labels},
                "spec": job.spec,
                "status": {
                    "phase": result.phase,
                    "model": entry.get("model"),
                    "completionTime": now(),
                },
            }
            self.event(f"{name}: {result.phase}: {result.score or result.message}")

    def _serve_all(
        self, deployments: Sequence[ModelDeployment], jobs: Sequence[TrainingJob]
    ) -> None:
        for deployment in deployments:
            self._reuse_earlier(deployment)
            rollout = LocalRollout(
                self.home,
                deployment,
                self.trained,
                free_port(),
                self.event,
                analyses=self.analyses,
                interval=self.interval,
                retrain=self._retrain,
            )
            self.rollouts.append(rollout)
            rollout.start()
            self.event(f"{rollout.name}: serving at {rollout.router.url}/v2/models/{rollout.name}")
            if self.traffic > 0:
                self._start_load(rollout, deployment)

    def _retrain(self, parent: str, why: str) -> ServedModel | None:
        """A run of ``parent`` trained here, as drift starts one in a cluster: its model."""
        source = self.trained.get(parent)
        if source is None:
            self.event(f"retraining: TrainingJob {parent} was not trained in this run")
            return None
        name = f"{parent}-drift-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
        labels = {**(source["metadata"].get("labels") or {}), LABEL_SCHEDULED_BY: parent}
        run = TrainingJob(metadata=ObjectMeta(name=name, labels=labels), spec=source["spec"])
        self.event(f"{parent}: drift: starting run {name} ({why})")
        self._train_all([run])
        status = self.trained[name]["status"]
        if status["phase"] != "Succeeded" or not status.get("model"):
            return None
        return ServedModel(status["model"]["uri"], status["model"]["digest"], name)

    def _reuse_earlier(self, deployment: ModelDeployment) -> None:
        """A TrainingJob the deployment names but this run did not train: the model an
        earlier run in this home trained, else a LocalError that says which file to add."""
        variants = [("stable", deployment.spec.stable)]
        if deployment.spec.canary is not None:
            variants.append(("canary", deployment.spec.canary))
        for variant, spec in variants:
            name = spec.model.training_job
            if name is None or name in self.trained:
                continue
            entry = self.earlier.get(name)
            if entry is None:
                raise LocalError(
                    f"ModelDeployment {deployment.metadata.name}: spec.{variant}.model."
                    f"trainingJob {name} is neither in the manifests given nor trained earlier "
                    f"in {self.home.root}: add its manifest, e.g. "
                    f"`mlops local up -f <{name}.yaml> -f <this deployment>`"
                )
            self.trained[name] = {
                "metadata": {"name": name, "labels": entry.get("labels") or {}},
                "spec": TrainingJobSpec.model_validate(entry["spec"]),
                "status": {"phase": "Succeeded", "model": entry["model"]},
            }
            self.state["trainingJobs"][name] = {**entry, "message": "trained by an earlier run"}
            self.event(f"{name}: reusing the model trained earlier ({entry['model']['version']})")

    def _start_load(self, rollout: LocalRollout, deployment: ModelDeployment) -> None:
        source = self.trained.get(deployment.spec.stable.model.training_job or "")
        if source is None:
            self.event(f"{rollout.name}: no TrainingJob data to send: --traffic needs one")
            return
        loaded = training_data.load(source["spec"].dataset)
        test = deployment.spec.ab_test
        load = LoadGenerator(
            port=rollout.router.port,
            model=rollout.name,
            rows=Rows.from_frame(loaded.frame, loaded.target),
            rps=self.traffic,
            sticky_header=test.header if test and deployment.spec.strategy == "abTest" else None,
            drifted=None
            if self.drift_after is None
            else Rows.from_frame(shifted(loaded.frame), loaded.target),
            drift_after=self.drift_after or 0.0,
        )
        load.start()
        self.loads.append(load)
        self.event(f"{rollout.name}: sending {self.traffic:g} requests/s with feedback")
        if deployment.spec.strategy == "blueGreen" and deployment.spec.canary is not None:
            preview = LoadGenerator(
                port=rollout.router.port,
                model=rollout.name,
                rows=Rows.from_frame(loaded.frame, loaded.target),
                rps=self.traffic,
                headers={OVERRIDE_HEADER: "canary"},
                seed=1,
            )
            preview.start()
            self.loads.append(preview)
            self.event(
                f"{rollout.name}: sending {self.traffic:g} requests/s to the preview "
                f"({OVERRIDE_HEADER}: canary)"
            )

    def _roll_out(self) -> int:
        hinted: set[str] = set()
        counted_at = 0.0
        while True:
            if time.monotonic() - counted_at >= SERVED_EVERY:
                counted_at = time.monotonic()
                for rollout in self.rollouts:
                    self.state["modelDeployments"].setdefault(rollout.name, {})["served"] = (
                        rollout.served()
                    )
            for rollout in self.rollouts:
                decision = rollout.tick()
                quiet = self.traffic == 0 and decision.reason == "AnalysisInconclusive"
                if quiet and rollout.name not in hinted:
                    hinted.add(rollout.name)
                    self.event(
                        f"{rollout.name}: hint: no requests are being sent, so every step is "
                        "held; run `up` with --traffic 20 to send the training data with "
                        f"feedback, or send requests to {rollout.router.url}/v2/models/"
                        f"{rollout.name}/infer"
                    )
            self.save()
            if not self.watch and all(rollout.finished for rollout in self.rollouts):
                break
            time.sleep(TICK_SECONDS)
        rolled_back = any(r.state.phase == "RolledBack" for r in self.rollouts)
        return EXIT_ROLLED_BACK if rolled_back else EXIT_OK

    def _shutdown(self) -> None:
        for load in self.loads:
            load.stop()
        for rollout in self.rollouts:
            rollout.stop()
        self.state["pid"] = None
        self.state["stopped"] = now()
        self.save()
