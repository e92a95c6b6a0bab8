"""Leader election: one operator replica acts, the others wait on a coordination.k8s.io/v1
Lease in the operator's namespace and take over when its holder stops renewing it.

Our own, over the one client (kube.py), rather than kopf's peering: kopf's peering is not a
Lease (it needs its own cluster-wide KopfPeering CRDs and RBAC on them), and a peer that
sees a higher-priority one merely pauses, with no bound on how long two replicas may both act
after a network split. Here, as in client-go's leaderelection: the standby takes the lease
once it has seen no renewal for the lease's duration; the leader stops acting (the process
exits, so the kubelet starts it again as a standby) once it has failed to renew for the
renew deadline, which is shorter; so the two never act at once. A leader that is stopped
(SIGTERM) releases the lease and a standby takes it at once.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlops_operator import kube, metrics
from mlops_operator.lease import Seen, Timing, claim, free_for, observe, released
from mlops_operator.objects import LABEL_MANAGED_BY, LEASE, MANAGER

EXIT_LOST = 3
"""The exit code of a leader that could not renew its lease in time."""
log = logging.getLogger(__name__)


def identity() -> str:
    """This process among the candidates: the Pod's name (its host name) and a nonce, so a
    restarted container is a new candidate."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _wall() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Elector:
    """One candidate for one Lease."""

    def __init__(self, namespace: str, name: str, me: str, timing: Timing) -> None:
        self.namespace, self.name, self.me, self.timing = namespace, name, me, timing
        self.holder: str | None = None
        self.renewed = 0.0
        self._seen: Seen | None = None
        self._stop = threading.Event()

    def try_once(self) -> bool:
        """Takes or renews the lease if it is free for us; False on any refusal or error."""
        try:
            lease = kube.get(LEASE, self.namespace, self.name)
            now = time.monotonic()
            if lease is None:
                return kube.create(self._new()) is not None and self._won(now)
            spec = lease.get("spec") or {}
            self._seen = observe(spec, self._seen, now)
            self.holder = spec.get("holderIdentity")
            if not free_for(spec, self.me, self._seen, now, self.timing):
                return False
            kube.replace({**lease, "spec": claim(spec, self.me, _wall(), self.timing)})
            return self._won(now)
        except kube.KubeError as error:
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False

    def _won(self, now: float) -> bool:
        self.holder, self.renewed = self.me, now
        return True

    def _new(self) -> dict[str, Any]:
        return {
            "apiVersion": LEASE.api_version,
            "kind": LEASE.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {LABEL_MANAGED_BY: MANAGER},
            },
            "spec": claim({}, self.me, _wall(), self.timing),
        }

    def acquire(self) -> None:
        """Blocks until this candidate leads."""
        log.info("leader election: %s waits for lease %s/%s", self.me, self.namespace, self.name)
        while not self.try_once():
            time.sleep(self.timing.retry)
        log.info("leader election: %s leads (lease %s/%s)", self.me, self.namespace, self.name)
        metrics.LEADER.set(1)

    def keep(self, lost: Callable[[], None]) -> None:
        """Renews the lease every retry period; calls ``lost`` once a renew deadline passes
        without a renewal, even while a request hangs."""

        def renew() -> None:
            while not self._stop.wait(self.timing.retry):
                self.try_once()

        def watch() -> None:
            while not self._stop.wait(min(0.5, self.timing.retry)):
                if time.monotonic() - self.renewed > self.timing.renew_deadline:
                    lost()
                    return

        for loop in (renew, watch):
            threading.Thread(target=loop, name=f"lease-{loop.__name__}", daemon=True).start()

    def release(self) -> None:
        """Stops renewing and, if we still hold it, frees the lease for a standby."""
        self._stop.set()
        with contextlib.suppress(kube.KubeError):
            lease = kube.get(LEASE, self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.me:
                kube.replace({**lease, "spec": released(lease["spec"], _wall())})
                log.info("leader election: %s released the lease", self.me)


def stop_acting() -> None:
    """The leader lost its lease: stop at once, before a standby's wait is over."""
    log.critical("leader election: the lease could not be renewed in time; exiting")
    logging.shutdown()
    os._exit(EXIT_LOST)


@contextlib.contextmanager
def standby_health(port: int, elector: Elector) -> Iterator[None]:
    """/healthz of a waiting replica (kopf serves it once this one leads)."""
    if not port:
        yield
        return

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"leader": False, "holder": elector.holder}).encode()
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Health)
    thread = threading.Thread(target=server.serve_forever, name="standby-health", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
