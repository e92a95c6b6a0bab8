"""Running the server: uvicorn (httptools, uvloop), one or several worker processes."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

import uvicorn
from pydantic import SecretStr

from model_server.app import App, create_app
from model_server.connections import GuardedProtocol
from model_server.dataplane import DataPlane
from model_server.errors import ModelLoadError
from model_server.settings import ServerSettings

log = logging.getLogger("model_server")


def app_from_env() -> App:
    """The app factory the worker processes use (settings from MLOPS_* variables)."""
    settings = ServerSettings()
    return create_app(settings, DataPlane(settings), load_before_serving=True)


FILE_RESERVE = 64
"""Open files kept for everything but HTTP connections (the model, gRPC, the listener)."""


def protocol_options(settings: ServerSettings) -> dict[str, Any]:
    """What every HTTP server of ours runs with, the CLI's and the tests' in-process ones."""
    return {
        "loop": "uvloop" if sys.platform != "win32" else "asyncio",
        "http": GuardedProtocol,
        "ws": "none",
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": False,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "timeout_graceful_shutdown": settings.graceful_timeout,
    }


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    return {
        **protocol_options(settings),
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "workers": settings.workers,
        "backlog": 4096,
    }


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with a drain before its graceful shutdown on SIGTERM/SIGINT: for
    ``drain_seconds`` the app is not ready and closes each connection after its answer."""

    def __init__(self, config: uvicorn.Config, app: App, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_deadline is None and self.drain_seconds > 0 and not self.should_exit:
            self.drain_deadline = time.monotonic() + self.drain_seconds
            self.app.drain()
            log.info("draining for %.1f s before shutting down", self.drain_seconds)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.should_exit = True
        return await super().on_tick(counter)


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def listen(settings: ServerSettings, app: App) -> list[socket.socket]:
    """The REST socket, and the metrics socket when /metrics has a port of its own."""
    sockets = [bind(settings.host, settings.port)]
    if settings.metrics_port >= 0:
        sockets.append(bind(settings.host, settings.metrics_port))
        app.metrics_socket_port = sockets[1].getsockname()[1]
        log.info("serving /metrics on port %d only", app.metrics_socket_port)
    return sockets


def fit_open_files(settings: ServerSettings) -> ServerSettings:
    """Raise the open-file limit to its hard limit; lower max_connections below it if need be."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return settings
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    room = max(1, soft - FILE_RESERVE)
    if settings.max_connections <= room:
        return settings
    log.warning(
        "max_connections lowered from %d to %d: the open-file limit is %d",
        settings.max_connections,
        room,
        soft,
    )
    return settings.model_copy(update={"max_connections": room})


def run(settings: ServerSettings) -> int:
    """Serve until SIGTERM/SIGINT; the exit code: 0, or 1 when the model must not be served."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = fit_open_files(settings)
    if settings.workers > 1:
        # Fail fast, once, before forking workers that would each refuse the artifact.
        try:
            DataPlane(settings).load()
        except ModelLoadError as error:
            log.error("refusing to serve: %s", error)
            return 1
        # The workers rebuild the settings from the environment.
        for key, value in settings.model_dump(exclude_none=True).items():
            secret = isinstance(value, SecretStr)
            os.environ[f"MLOPS_{key.upper()}"] = value.get_secret_value() if secret else str(value)
        uvicorn.run("model_server.server:app_from_env", factory=True, **uvicorn_options(settings))
        return 0
    data_plane = DataPlane(settings)
    servers: list[uvicorn.Server] = []

    def stop() -> None:  # the model must not be served: shut down, then exit 1 below
        servers[0].should_exit = True

    app = create_app(settings, data_plane, on_fatal=stop)
    server = DrainingServer(
        uvicorn.Config(app, **uvicorn_options(settings)), app, settings.drain_seconds
    )
    servers.append(server)
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler that was in
    # place before: make that a no-op so that a drained server exits 0, not "killed by signal".
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    server.run(sockets=listen(settings, app))
    if data_plane.load_error is not None:
        print(f"mlops serve: refusing to serve: {data_plane.load_error}", file=sys.stderr)
        return 1
    return 0
