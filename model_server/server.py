"""Running the server: uvicorn (httptools, uvloop), one or several worker processes."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import uvicorn

from model_server.app import App, create_app
from model_server.dataplane import DataPlane
from model_server.errors import ModelLoadError
from model_server.settings import ServerSettings

log = logging.getLogger("model_server")


def app_from_env() -> App:
    """The app factory the worker processes use (settings from MLOPS_* variables)."""
    settings = ServerSettings()
    return create_app(settings, DataPlane(settings), load_before_serving=True)


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop" if sys.platform != "win32" else "asyncio",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "workers": settings.workers,
        "backlog": 4096,
    }


def run(settings: ServerSettings) -> int:
    """Serve until SIGTERM/SIGINT; the exit code: 0, or 1 when the model must not be served."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1:
        # Fail fast, once, before forking workers that would each refuse the artifact.
        try:
            DataPlane(settings).load()
        except ModelLoadError as error:
            log.error("refusing to serve: %s", error)
            return 1
        # The workers rebuild the settings from the environment.
        for key, value in settings.model_dump(exclude_none=True).items():
            os.environ[f"MLOPS_{key.upper()}"] = str(value)
        uvicorn.run("model_server.server:app_from_env", factory=True, **uvicorn_options(settings))
        return 0
    data_plane = DataPlane(settings)
    servers: list[uvicorn.Server] = []

    def stop() -> None:  # the model must not be served: shut down, then exit 1 below
        servers[0].should_exit = True

    app = create_app(settings, data_plane, on_fatal=stop)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    servers.append(server)
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler that was in
    # place before: make that a no-op so that a drained server exits 0, not "killed by signal".
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    server.run()
    if data_plane.load_error is not None:
        print(f"mlops serve: refusing to serve: {data_plane.load_error}", file=sys.stderr)
        return 1
    return 0
