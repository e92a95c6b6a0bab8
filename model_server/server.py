"""Running the server: uvicorn (httptools, uvloop), one or several worker processes."""

from __future__ import annotations

import logging
import os
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
    return create_app(settings, DataPlane(settings))


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
    app = create_app(settings, data_plane)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    server.run()
    if data_plane.load_error is not None:
        print(f"mlops serve: refusing to serve: {data_plane.load_error}", file=sys.stderr)
        return 1
    return 0
