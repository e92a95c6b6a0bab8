"""Clients of a ModelDeployment's router on the real node: predictions sent from the node's
host through the router's Service (kube-proxy), each answer recorded with the variant the
router says served it (`x-mlops-served-by`) and the model version the server answered with."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sklearn.datasets import load_breast_cancer

from mlops_operator.traffic.split import VARIANT_HEADER
from tests.cluster.harness import Cluster, wait_for
from tests.cluster.rollouts import Rollouts

from .chart import Release
from .realnode import RealNode, pod_logs

HOLD = 4.0
"""Seconds every answer must keep to a state for the clients to have moved to it."""


@dataclass(frozen=True)
class Answer:
    at: float  # when the request was sent (monotonic)
    code: int | str  # the HTTP status, or the error's name
    variant: str  # the router's x-mlops-served-by
    version: str  # the model_version the server answered with


class Client(threading.Thread):
    """Predictions through the router's Service from the node's host, ``rps`` a second, never
    retried (a keep-alive connection the server had closed is opened again once, as HTTP
    clients do); every answer recorded. The rows sent, in turn: ``rows``, by default the
    first 64 of breast cancer (the quickstart's models)."""

    def __init__(
        self,
        address: tuple[str, int],
        model: str,
        *,
        headers: dict[str, str] | None = None,
        keepalive: bool = True,
        rps: float = 10.0,
        rows: Sequence[Sequence[float]] = (),
    ) -> None:
        super().__init__(name=f"client-{model}", daemon=True)
        self.address, self.model, self.keepalive, self.rps = address, model, keepalive, rps
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        sent = rows or load_breast_cancer().data[:64].tolist()
        self.bodies = [
            json.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [1, len(row)], "datatype": "FP64", "data": list(row)}
                    ]
                }
            ).encode()
            for row in sent
        ]
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)

    def snapshot(self, since: float = 0.0) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.at >= since]

    def errors(self, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        return [a for a in self.snapshot(since) if a.code != 200 and a.at <= until]

    def run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        path = f"/v2/models/{self.model}/infer"
        n = 0
        next_at = time.monotonic()
        while not self.halt.is_set():
            at = time.monotonic()
            body = self.bodies[n % len(self.bodies)]
            n += 1
            for attempt in range(2):
                reused = connection is not None
                if connection is None:
                    connection = http.client.HTTPConnection(*self.address, timeout=5)
                try:
                    connection.request("POST", path, body, self.headers)
                    response = connection.getresponse()
                    answer = response.read()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    connection.close()
                    connection = None
                    if reused and attempt == 0:
                        continue  # the server closed it between two requests
                    self._record(Answer(at, "ConnectionClosed", "", ""))
                    break
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    connection = None
                    self._record(Answer(at, type(error).__name__, "", ""))
                    break
                version = ""
                if response.status == 200:
                    version = str(json.loads(answer).get("model_version"))
                variant = response.getheader(VARIANT_HEADER) or ""
                self._record(Answer(at, response.status, variant, version))
                if not self.keepalive or response.will_close:
                    connection.close()
                    connection = None
                break
            next_at += 1.0 / self.rps
            self.halt.wait(max(0.0, next_at - time.monotonic()))
        if connection is not None:
            connection.close()

    def _record(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def moved(
        self, since: float, want: Callable[[Answer], bool], timeout: float = 90, hold: float = HOLD
    ) -> float:
        """Seconds from ``since`` until every answer is what ``want`` says, once that has held
        for ``hold`` seconds: the first answer after the last one that was not."""
        deadline = time.monotonic() + timeout
        while True:
            answers = self.snapshot(since)
            last_other = max((a.at for a in answers if not want(a)), default=since)
            after = [a for a in answers if a.at > last_other]
            if len(after) >= 5 and after[-1].at - after[0].at >= hold:
                return round(after[0].at - since, 2)
            if time.monotonic() > deadline:
                tail = [(round(a.at - since, 2), a.code, a.variant, a.version) for a in answers]
                raise AssertionError(f"the clients did not move within {timeout}s: {tail[-40:]}")
            time.sleep(0.2)

    def mixed(self, since: float, until: float) -> dict[str, int]:
        """How many answers of each (variant, version) the clients got in a window."""
        out: dict[str, int] = {}
        for a in self.snapshot(since):
            if a.at <= until:
                key = f"{a.code} {a.variant} {a.version}"
                out[key] = out.get(key, 0) + 1
        return out


def is_(variant: str, version: str) -> Callable[[Answer], bool]:
    return lambda a: a.code == 200 and a.variant == variant and a.version == version


def started(release: Release, name: str, **options: Any) -> Client:
    """A started client of a watched ModelDeployment's router, once it answered 200."""
    found = Client(release.service_address(name), name, **options)
    found.start()
    wait_for(f"{name}'s router answering", lambda: any(a.code == 200 for a in found.answers), 120)
    return found


@dataclass
class Installation:
    """The chart installation a node module shares: the ModelDeployments' rollouts, the
    clients the tests started and the numbers they measured."""

    release: Release
    rollouts: Rollouts
    clients: list[Client] = field(default_factory=list, kw_only=True)
    numbers: dict[str, Any] = field(default_factory=dict, kw_only=True)

    @property
    def cluster(self) -> Cluster:
        return self.release.cluster

    @property
    def namespace(self) -> str:
        return self.release.watch

    def client(self, name: str, **options: Any) -> Client:
        """A started client of the ModelDeployment's router, once it answers 200."""
        found = started(self.release, name, **options)
        self.clients.append(found)
        return found

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.rollouts.read(name).get("status") or {})


def tear_down(
    release: Release,
    node: RealNode,
    found: Installation | None,
    *,
    prefix: str,
    label: str,
    started: float,
) -> None:
    """The end of a module's installation: its clients stopped; every Pod's log and the
    module's numbers in the node's directory (``<prefix>-pods-<namespace>.json``,
    ``<prefix>-numbers.json``), the numbers printed too; the chart uninstalled (left in place
    when a step failed, to be looked at); the namespaces deleted; ``<label>: total`` timed."""
    for running in found.clients if found else ():
        running.stop()
    cluster = release.cluster
    for namespace in (release.watch, release.namespace):
        (node.root / f"{prefix}-pods-{namespace}.json").write_text(
            json.dumps(pod_logs(cluster.core, namespace), indent=1)
        )
    if found is not None:
        (node.root / f"{prefix}-numbers.json").write_text(json.dumps(found.numbers, indent=1))
        print(f"\n{label} on the real node: {json.dumps(found.numbers, indent=1)}")
    if not release.failed:
        release.run("uninstall")
    for namespace in (release.watch, release.namespace):
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    node.e2e_timings[f"{label}: total"] = round(time.monotonic() - started, 1)
