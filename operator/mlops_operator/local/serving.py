"""Serving locally: a model-server process per variant and an nginx router in front.

The router runs the nginx binary with exactly the configuration the operator renders for the
router Pod, its upstreams pointed at the local servers; a change of weights rewrites the file
and reloads nginx (SIGHUP), which lets in-flight requests finish. Its proof to the servers
(traffic.proof) is a token of its own, in a snippet file of its prefix (owner-only), and the
servers are given the token: the analysis counts only what came through the router.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlops_operator.local.home import Home
from mlops_operator.local.processes import Child, mlops_command, start
from mlops_operator.traffic.nginx import HEALTH_PATH, NginxConfig, render
from mlops_operator.traffic.proof import SNIPPET_KEY, snippet
from mlops_operator.traffic.split import Split

LOOPBACK = "127.0.0.1"
NGINX_HINT = (
    "nginx is needed for the local router: install it with your package manager "
    "(apt-get install nginx, dnf install nginx, brew install nginx) or put it on PATH"
)


class ServingError(Exception):
    """A model server or the router could not start."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def wait_until_ready(url: str, child: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise ServingError(f"{child.name} exited with {child.process.poll()}; see {child.log}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    raise ServingError(f"{child.name} not ready after {timeout:.0f}s; see {child.log}")


@dataclass
class ModelServer:
    """One variant's model server."""

    variant: str
    model: str
    """What it serves, as the status shows it (a TrainingJob name or a uri)."""
    uri: str
    digest: str
    port: int
    child: Child

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}/metrics"

    def wait_until_ready(self) -> None:
        wait_until_ready(f"http://{self.address}/v2/health/ready", self.child)


def start_model_server(
    home: Home,
    deployment: str,
    variant: str,
    *,
    model: str,
    uri: str,
    digest: str,
    env: dict[str, str] | None = None,
) -> ModelServer:
    port = free_port()
    name = f"{deployment}-{variant}-{port}"
    command = mlops_command(
        "serve",
        *("--model-uri", uri, "--model-digest", digest, "--model-name", deployment),
        *("--variant", variant, "--host", LOOPBACK, "--port", str(port)),
        *("--grpc-port", str(free_port())),
    )
    child = start(name, command, home.logs / f"serve-{name}.log", env)
    return ModelServer(variant, model, uri, digest, port, child)


def nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ServingError(NGINX_HINT)


class Router:
    """The nginx router of one ModelDeployment."""

    def __init__(self, home: Home, deployment: str, port: int) -> None:
        self.prefix = home.run / f"router-{deployment}"
        self.conf = self.prefix / "nginx.conf"
        self.proof = self.prefix / SNIPPET_KEY
        self.token = secrets.token_urlsafe(32)
        """The proof nginx sends the servers: give it to them as MLOPS_ROUTER_TOKEN."""
        self.log = home.logs / f"router-{deployment}.log"
        self.deployment = deployment
        self.port = port
        self.child: Child | None = None
        self.rendered = ""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def configure(
        self,
        split: Split,
        stable: ModelServer,
        canary: ModelServer | None,
        retired: Sequence[ModelServer] = (),
    ) -> bool:
        """Write the configuration for this split; start or reload nginx. True when changed.
        ``retired``: servers about to stop, which still take feedback (NginxConfig)."""
        text = render(
            NginxConfig(
                split=split,
                stable=[stable.address],
                canary=[canary.address] if canary and split.canary else [],
                retired=[server.address for server in retired],
                listen=f"{LOOPBACK}:{self.port}",
                runtime_dir=str(self.prefix),
                error_log=str(self.log),
                worker_processes="1",
                salt=self.deployment,
                proof=str(self.proof),
                client_keepalive=False,  # the split changes by SIGHUP: see NginxConfig
            )
        )
        if text == self.rendered and self.child and self.child.alive():
            return False
        self.prefix.mkdir(parents=True, exist_ok=True)
        self._write_proof()
        self.conf.write_text(text)
        if self.child is None or not self.child.alive():
            self._start()
        else:
            self._reload()
        self.rendered = text
        return True

    def _write_proof(self) -> None:
        """The snippet with the token, readable by its owner only (nginx runs as the user)."""
        self.proof.touch(mode=0o600, exist_ok=True)
        self.proof.chmod(0o600)
        self.proof.write_text(snippet(self.token))

    def _start(self) -> None:
        command = [nginx_binary(), "-p", str(self.prefix), "-c", str(self.conf)]
        command += ["-e", str(self.log), "-g", "daemon off;"]
        self.child = start(f"router-{self.deployment}", command, self.log)
        wait_until_ready(self.url + HEALTH_PATH, self.child, timeout=15)

    def _reload(self) -> None:
        assert self.child is not None
        self.child.process.send_signal(signal.SIGHUP)
        time.sleep(0.2)
