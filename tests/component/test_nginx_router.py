"""Real nginx with the rendered configuration: split accuracy, stickiness, override, mirror."""

from __future__ import annotations

import getpass
import http.client
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mlops_operator.traffic import VARIANT_HEADER, Split, Sticky
from mlops_operator.traffic.nginx import HEALTH_PATH, NginxConfig, render

from .backends import Backend, free_port, serving

pytestmark = [
    pytest.mark.component,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]
REQUESTS = 5000
CONNECTIONS = 8


class Nginx:
    def __init__(
        self, prefix: Path, backends: dict[str, Backend], client_keepalive: bool = True
    ) -> None:
        self.client_keepalive = client_keepalive
        self.prefix = prefix
        self.backends = backends
        self.port = free_port()
        self.conf = prefix / "nginx.conf"
        self.process: subprocess.Popen[bytes] | None = None
        self.retries = 0

    def write(self, split: Split, retired: tuple[str, ...] = ()) -> None:
        text = render(
            NginxConfig(
                split=split,
                stable=[self.backends["stable"].address],
                canary=[self.backends["canary"].address] if split.canary else [],
                retired=[self.backends[variant].address for variant in retired],
                listen=f"127.0.0.1:{self.port}",
                runtime_dir=str(self.prefix),
                error_log=str(self.prefix / "error.log"),
                worker_processes="1",
                user=getpass.getuser() if os.geteuid() == 0 else None,
                salt="test/iris",
                client_keepalive=self.client_keepalive,
            )
        )
        self.conf.write_text(text)

    def start(self) -> None:
        check = subprocess.run(
            ["nginx", "-t", "-p", str(self.prefix), "-c", str(self.conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                assert self.get(HEALTH_PATH)[0] == 200
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start: " + (self.prefix / "error.log").read_text())

    def reload(self, split: Split, retired: tuple[str, ...] = ()) -> None:
        assert self.process is not None
        self.write(split, retired)
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGQUIT)
            self.process.wait(timeout=10)

    def get(
        self,
        path: str = "/v2/models/iris/infer",
        headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, str]:
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", path, body=b'{"inputs": []}', headers=headers or {})
            response = conn.getresponse()
            response.read()
            return response.status, response.getheader(VARIANT_HEADER) or ""
        finally:
            if own:
                conn.close()

    def load(
        self, count: int, headers: list[dict[str, str]] | None = None, retry: bool = True
    ) -> list[str]:
        """`count` requests over keep-alive connections; the variant that served each."""

        def worker(index: int) -> list[tuple[int, str]]:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            out = []
            try:
                for i in range(index, count, CONNECTIONS):
                    extra = headers[i] if headers else None
                    try:
                        status, variant = self.get(headers=extra, conn=conn)
                    except ConnectionError:
                        if not retry:
                            out.append((i, "lost"))
                            conn.close()
                            continue
                        # An idle keep-alive connection closed by a worker that shuts down
                        # gracefully: the request was never read, so it is sent again (as
                        # HTTP clients do on a reused connection).
                        self.retries += 1
                        conn.close()
                        status, variant = self.get(headers=extra, conn=conn)
                    out.append((i, variant if status == 200 else f"error {status}"))
            finally:
                conn.close()
            return out

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            results = [item for part in pool.map(worker, range(CONNECTIONS)) for item in part]
        return [variant for _, variant in sorted(results)]


@contextmanager
def router(tmp_path: Path, split: Split, client_keepalive: bool = True) -> Iterator[Nginx]:
    with serving("stable", "canary") as backends:
        nginx = Nginx(tmp_path, backends, client_keepalive)
        nginx.write(split)
        nginx.start()
        try:
            yield nginx
        finally:
            nginx.stop()


@pytest.mark.parametrize("weight", [10, 50, 90])
def test_weighted_split_within_two_points(tmp_path: Path, weight: int) -> None:
    with router(tmp_path, Split(canary_weight=weight, canary=True)) as nginx:
        served = Counter(nginx.load(REQUESTS))
    assert set(served) == {"stable", "canary"}, served
    measured = 100 * served["canary"] / REQUESTS
    print(f"canary weight {weight}%: measured {measured:.2f}% over {REQUESTS} requests")
    assert abs(measured - weight) <= 2
    assert nginx.backends["canary"].received["live"] == served["canary"]
    assert nginx.backends["stable"].received["live"] == served["stable"]


def test_sticky_header_keeps_keys_on_their_variant(tmp_path: Path) -> None:
    split = Split(canary_weight=30, canary=True, sticky=Sticky("header", "x-user-id"))
    keys = [f"user-{i}" for i in range(1000)]
    headers = [{"x-user-id": key} for key in keys for _ in range(3)]
    with router(tmp_path, split) as nginx:
        served = nginx.load(len(headers), headers)
        again = nginx.load(len(keys), [{"x-user-id": key} for key in keys])
    by_key: dict[str, set[str]] = {}
    for header, variant in zip(headers, served, strict=True):
        by_key.setdefault(header["x-user-id"], set()).add(variant)
    assert all(len(variants) == 1 for variants in by_key.values())
    assert [by_key[key].pop() for key in keys] == again
    share = 100 * again.count("canary") / len(keys)
    print(f"sticky 30%: {share:.1f}% of 1000 keys on the canary")
    assert abs(share - 30) <= 5


def test_sticky_cookie(tmp_path: Path) -> None:
    split = Split(canary_weight=50, canary=True, sticky=Sticky("cookie", "session"))
    with router(tmp_path, split) as nginx:
        for key in ("a", "b", "c", "d", "e"):
            headers = [{"Cookie": f"other=1; session={key}"}] * 20
            assert len(set(nginx.load(20, headers))) == 1


def test_override_header_forces_a_variant(tmp_path: Path) -> None:
    with router(tmp_path, Split(canary_weight=10, canary=True)) as nginx:
        assert set(nginx.load(200, [{"x-mlops-variant": "canary"}] * 200)) == {"canary"}
        assert set(nginx.load(200, [{"x-mlops-variant": "stable"}] * 200)) == {"stable"}


@pytest.mark.parametrize("headers", [None, {"x-mlops-variant": "canary"}], ids=["split", "forced"])
def test_a_canary_nobody_can_reach_costs_no_prediction(
    tmp_path: Path, headers: dict[str, str] | None
) -> None:
    """A refused connection to the canary (a Pod restarting, a NetworkPolicy that does not
    admit a new router Pod yet) is answered by the stable servers, and the answer says so."""
    with serving("stable") as backends:
        backends["canary"] = Backend("canary", free_port())  # nothing listens there
        nginx = Nginx(tmp_path, backends)
        nginx.write(Split(canary_weight=50, canary=True))
        nginx.start()
        try:
            served = nginx.load(400, [headers] * 400 if headers else None, retry=False)
        finally:
            nginx.stop()
    assert Counter(served) == {"stable": 400}
    assert backends["stable"].received == Counter(live=400)


def test_shadow_mirrors_every_request_and_drops_the_answers(tmp_path: Path) -> None:
    count = 500
    with router(tmp_path, Split(canary=True, mirror=True)) as nginx:
        served = nginx.load(count)
        canary = nginx.backends["canary"]
        deadline = time.monotonic() + 10
        while canary.received["mirrored"] < count and time.monotonic() < deadline:
            time.sleep(0.05)
    assert set(served) == {"stable"}
    assert nginx.backends["stable"].received == Counter(live=count)
    assert canary.received == Counter(mirrored=count)
    assert set(canary.bodies) == {b'{"inputs": []}'}


def test_reload_under_load_drops_nothing(tmp_path: Path) -> None:
    """The local runner's weight changes: a graceful reload while requests flow."""
    with (
        router(tmp_path, Split(canary_weight=10, canary=True)) as nginx,
        ThreadPoolExecutor(1) as pool,
    ):
        running = pool.submit(nginx.load, 3000)
        for weight in (25, 50, 75):
            time.sleep(0.3)
            nginx.reload(Split(canary_weight=weight, canary=True))
        served = running.result()
    print(f"reloads under load: {len(served)} answered, {nginx.retries} idle connections retried")
    assert len(served) == 3000
    assert not [v for v in served if v not in ("stable", "canary")]


def test_without_client_keep_alive_reloads_lose_nothing_of_a_client_that_never_retries(
    tmp_path: Path,
) -> None:
    """What the local runner does: each answer closes its connection, so a reload (which
    closes idle keep-alive connections under a client's next request) finds none idle."""
    with (
        router(tmp_path, Split(canary_weight=10, canary=True), client_keepalive=False) as nginx,
        ThreadPoolExecutor(1) as pool,
    ):
        running = pool.submit(nginx.load, 3000, None, False)
        for weight in (25, 50, 75, 90, 60, 30):
            time.sleep(0.2)
            nginx.reload(Split(canary_weight=weight, canary=True))
        served = running.result()
    assert served.count("lost") == 0
    assert len(served) == 3000
    assert not [v for v in served if v not in ("stable", "canary")]


@contextmanager
def model_servers(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two real `mlops serve` data planes (stable, canary) on loopback: their base URLs."""
    from model_server.settings import ServerSettings
    from model_server.testing import iris_artifact, running_server

    directory = tmp_path / "iris"
    digest = iris_artifact(directory)
    with (
        running_server(
            ServerSettings(model_uri=str(directory), model_digest=digest, variant="stable")
        ) as stable,
        running_server(
            ServerSettings(model_uri=str(directory), model_digest=digest, variant="canary")
        ) as canary,
    ):
        yield {"stable": stable, "canary": canary}


def predict(router: str, count: int) -> None:
    """Predictions order-0, order-1, ... through the router, each answered 200."""
    from model_server.testing import http

    row = [5.1, 3.5, 1.4, 0.2]
    for index in range(count):
        body = {
            "id": f"order-{index}",
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}],
        }
        assert http(router, "POST", "/v2/models/iris/infer", body)[0] == 200


def feedback(router: str, count: int) -> list[tuple[int, Any]]:
    """The ground truth of predict's requests, through the router: the answers."""
    from model_server.testing import http

    return [
        http(router, "POST", "/v2/models/iris/feedback", {"id": f"order-{i}", "truth": [0]})
        for i in range(count)
    ]


def feedback_counted(base: str) -> float:
    from model_server.testing import http

    status, text = http(base, "GET", "/metrics")
    assert status == 200
    text = text if isinstance(text, str) else text.decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlops_feedback_total{") and 'outcome="observed"' not in line
    )


@pytest.mark.parametrize(
    "split",
    [Split(canary_weight=50, canary=True), Split(canary=True, mirror=True)],
    ids=["live-50-50", "shadow"],
)
def test_feedback_through_the_router_reaches_the_variant_that_predicted(
    tmp_path: Path, split: Split
) -> None:
    """The client sends predictions and then their ground truth to the router only, never
    naming a variant: every feedback is accepted, by the variant that made the prediction
    (in shadow, by both: the canary predicted the mirrored copy)."""
    with model_servers(tmp_path) as bases:
        servers = {
            variant: Backend(variant, int(base.rsplit(":", 1)[1]))
            for variant, base in bases.items()
        }
        nginx = Nginx(tmp_path / "nginx", servers)
        nginx.prefix.mkdir()
        nginx.write(split)
        nginx.start()
        try:
            router = f"http://127.0.0.1:{nginx.port}"
            predict(router, 20)
            time.sleep(0.5)  # mirrored copies are sent after the answer
            answers = feedback(router, 20)
        finally:
            nginx.stop()
        assert [status for status, _ in answers] == [200] * 20, answers
        counted = {variant: feedback_counted(base) for variant, base in bases.items()}
    if split.mirror:
        assert counted == {"stable": 20, "canary": 20}
    else:
        assert counted["stable"] + counted["canary"] == 20
        assert counted["stable"] > 0
        assert counted["canary"] > 0


@pytest.mark.parametrize("retired", [("canary",), ()], ids=["retired", "dropped"])
def test_feedback_reaches_a_server_the_switch_just_retired(
    tmp_path: Path, retired: tuple[str, ...]
) -> None:
    """A rollback (or a promotion) takes the canary off the split between predictions and
    their feedback: while its server is retired (not yet stopped), the feedback of what it
    predicted is still accepted; dropped from the router at once, it gets 404."""
    with model_servers(tmp_path) as bases:
        servers = {v: Backend(v, int(base.rsplit(":", 1)[1])) for v, base in bases.items()}
        nginx = Nginx(tmp_path / "nginx", servers)
        nginx.prefix.mkdir()
        nginx.write(Split(canary_weight=50, canary=True))
        nginx.start()
        try:
            router = f"http://127.0.0.1:{nginx.port}"
            predict(router, 20)
            nginx.reload(Split(), retired)
            time.sleep(0.5)  # the new workers take over
            answers = feedback(router, 20)
        finally:
            nginx.stop()
        by_canary = feedback_counted(bases["canary"])
    statuses = Counter(status for status, _ in answers)
    if retired:
        assert statuses == {200: 20}, answers
        assert by_canary > 0
    else:
        assert statuses[404] > 0, answers
