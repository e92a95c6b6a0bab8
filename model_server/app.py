"""The HTTP layer: a raw ASGI app with an explicit route table, delegating to the data plane.

Raw ASGI (no framework) on uvicorn with httptools and uvloop measured fastest for this
workload (see docs/model-server.md). Errors are mapped to responses in one place:
:class:`ServerError` subclasses carry their status; anything else is a logged 500.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from model_server.connections import Guard, Limits
from model_server.dataplane import DataPlane
from model_server.errors import (
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServerError,
    Unauthorized,
)
from model_server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from model_server.settings import ServerSettings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"
Response = tuple[int, bytes, bytes]  # status, body, content type


@dataclass(frozen=True)
class Request:
    method: str
    params: dict[str, str]
    scope: Scope
    receive: Receive


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]
    handler: Handler
    name: str

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.pattern):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.pattern, parts, strict=True):
            if want.startswith("{"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


def _json(status: int, payload: Any) -> Response:
    return status, orjson.dumps(payload), JSON


def openapi_document() -> bytes:
    return resources.files("model_server").joinpath("openapi.json").read_bytes()


class App:
    """The ASGI application; build it with :func:`create_app`."""

    def __init__(
        self,
        settings: ServerSettings,
        data_plane: DataPlane,
        on_fatal: Callable[[], None] | None = None,
        load_before_serving: bool = False,
    ) -> None:
        self.settings = settings
        self.load_before_serving = load_before_serving
        self.data_plane = data_plane
        self.connection_guard = Guard(
            Limits(settings.header_timeout, settings.body_timeout, settings.max_connections),
            data_plane.events,
        )
        """What the HTTP protocol (model_server.connections) enforces and counts."""
        self.on_fatal = on_fatal or _terminate_self
        self.routes = self._route_table()
        self.metrics_routes = [r for r in self.routes if r.name == "/metrics"]
        if settings.metrics_port >= 0:
            self.routes = [r for r in self.routes if r.name != "/metrics"]
        self.closing = False
        """Draining: every response says Connection: close, so clients leave by themselves."""
        self.metrics_socket_port: int | None = None
        """The port /metrics alone is served on, once bound (None: served on --port)."""
        token = settings.feedback_token
        self._feedback_token = token.get_secret_value().encode() if token is not None else None
        self._openapi: bytes | None = None
        self._load_task: asyncio.Task[bool] | None = None
        self._grpc: Any = None
        self.grpc_port: int | None = None
        """The gRPC service's port once started (None: not started or disabled)."""

    def _route_table(self) -> list[Route]:
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/v2/models/{name}/infer", self.infer),
            ("POST", "/v2/models/{name}/versions/{version}/infer", self.infer),
            ("GET", "/v2/health/live", self.live),
            ("GET", "/v2/health/ready", self.ready),
            ("GET", "/v2", self.server_metadata),
            ("GET", "/v2/models/{name}", self.model_metadata),
            ("GET", "/v2/models/{name}/versions/{version}", self.model_metadata),
            ("GET", "/v2/models/{name}/ready", self.model_ready),
            ("GET", "/v2/models/{name}/versions/{version}/ready", self.model_ready),
            ("POST", "/v2/models/{name}/explain", self.explain),
            ("POST", "/v2/models/{name}/versions/{version}/explain", self.explain),
            ("POST", "/v2/models/{name}/feedback", self.feedback),
            ("POST", "/v2/models/{name}/versions/{version}/feedback", self.feedback),
            ("GET", "/metrics", self.metrics),
            ("GET", "/v2/openapi.json", self.openapi),
            ("GET", "/openapi.json", self.openapi),
        ]
        return [
            Route(method, tuple(path.split("/")[1:]), handler, path)
            for method, path, handler in table
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            routes = self.routes
            if (
                self.metrics_socket_port is not None
                and scope["server"][1] == self.metrics_socket_port
            ):
                routes = self.metrics_routes
            route, params = self._route(scope["method"], scope["path"], routes)
            status, body, content_type = await route.handler(
                Request(scope["method"], params, scope, receive)
            )
        except ServerError as error:
            status, body, content_type = _json(error.status_code, {"error": error.message})
        except Exception as error:
            self.data_plane.internal_error(error, f"{scope['method']} {scope['path']}")
            status, body, content_type = _json(
                500, {"error": f"internal error: {type(error).__name__}"}
            )
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if self.closing:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _route(self, method: str, path: str, routes: list[Route]) -> tuple[Route, dict[str, str]]:
        parts = path.rstrip("/").split("/")[1:] if path != "/" else []
        allowed = []
        for route in routes:
            params = route.match(parts)
            if params is None:
                continue
            if route.method == method:
                return route, params
            allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}; use {allowed[0]}")
        raise NotFound(f"no such endpoint: {path}")

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_request_bytes
        for key, value in request.scope["headers"]:
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise InvalidInput("invalid Content-Length header", "http") from None
                if length > limit:
                    raise PayloadTooLarge(
                        f"the request body has {length} bytes; at most {limit} are accepted"
                    )
        chunks = []
        size = 0
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise InvalidInput("the client disconnected", "http")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # handlers --------------------------------------------------------------------------------

    async def infer(self, request: Request) -> Response:
        start = time.perf_counter()
        source = self.data_plane.provenance.of_headers(request.scope["headers"])
        try:
            body = await self._body(request)
        except ServerError as error:
            self.data_plane.rejected(error, start, source)
            raise
        name, version = request.params["name"], request.params.get("version")
        header_length = None
        for key, value in request.scope["headers"]:
            if key == b"inference-header-content-length":
                try:
                    header_length = int(value)
                except ValueError:
                    invalid = InvalidInput("invalid Inference-Header-Content-Length header", "http")
                    self.data_plane.rejected(invalid, start, source)
                    raise invalid from None
        answer = await self.data_plane.infer(name, version, body, header_length, source)
        return 200, answer, JSON

    async def live(self, request: Request) -> Response:
        return _json(200, {"live": self.data_plane.live()})

    async def ready(self, request: Request) -> Response:
        ready = self.data_plane.ready()
        return _json(200 if ready else 503, {"ready": ready})

    async def server_metadata(self, request: Request) -> Response:
        return _json(200, self.data_plane.server_metadata())

    async def model_metadata(self, request: Request) -> Response:
        params = request.params
        return _json(200, self.data_plane.model_metadata(params["name"], params.get("version")))

    async def model_ready(self, request: Request) -> Response:
        name = request.params["name"]
        ready = self.data_plane.model_ready(name, request.params.get("version"))
        return _json(200 if ready else 503, {"name": name, "ready": ready})

    async def explain(self, request: Request) -> Response:
        body = await self._body(request)
        params = request.params
        return 200, await self.data_plane.explain(params["name"], params.get("version"), body), JSON

    async def feedback(self, request: Request) -> Response:
        headers = request.scope["headers"]
        self._authorize_feedback(headers)
        body = await self._body(request)
        params = request.params
        source = self.data_plane.provenance.of_headers(headers)
        answer = self.data_plane.feedback(params["name"], params.get("version"), body, source)
        return 200, answer, JSON

    def _authorize_feedback(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Feedback steers rollouts: with a token set, only its holders may give it."""
        if self._feedback_token is None:
            return
        presented = next((value for key, value in headers if key == b"authorization"), None)
        if presented is None:
            raise Unauthorized(
                "feedback needs 'Authorization: Bearer <token>' (the token is in the "
                "ModelDeployment's Secret <name>-feedback, key token)"
            )
        scheme, _, token = presented.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(
            token.strip(), self._feedback_token
        ):
            raise Forbidden("the feedback token is not this model's")

    async def metrics(self, request: Request) -> Response:
        return 200, self.data_plane.metrics_exposition(), METRICS_CONTENT_TYPE.encode()

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = openapi_document()
        return 200, self._openapi, JSON

    def drain(self) -> None:
        """Stop being ready; tell every client to close its connection after its answer."""
        self.closing = True
        self.data_plane.draining()

    # lifespan --------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start_grpc()
                except Exception as error:
                    failure = f"cannot serve gRPC on port {self.settings.grpc_port}: {error}"
                    log.error("%s", failure)
                    await send({"type": "lifespan.startup.failed", "message": failure})
                    return
                if self.data_plane.model is None and self.load_before_serving:
                    if not await self.data_plane.load_async():
                        failure = f"refusing to serve: {self.data_plane.load_error}"
                        await send({"type": "lifespan.startup.failed", "message": failure})
                        return
                elif self.data_plane.model is None:
                    self._load_task = asyncio.create_task(self._load())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._load_task is not None and not self._load_task.done():
                    self._load_task.cancel()
                if self._grpc is not None:
                    await self._grpc.stop(self.settings.graceful_timeout)
                await self.data_plane.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start_grpc(self) -> None:
        if self.settings.grpc_port < 0:
            return
        from model_server import grpc_service

        self._grpc, self.grpc_port = await grpc_service.start(self.settings, self.data_plane)

    async def _load(self) -> bool:
        loaded = await self.data_plane.load_async()
        if not loaded:
            self.on_fatal()
        return loaded


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def create_app(
    settings: ServerSettings,
    data_plane: DataPlane,
    *,
    on_fatal: Callable[[], None] | None = None,
    load_before_serving: bool = False,
) -> App:
    """The ASGI app serving ``data_plane``; it loads the model at startup unless loaded.

    By default the model loads in the background: the server answers (live, not ready) while
    it loads, and ``on_fatal`` is called when the model must not be served (default: SIGTERM
    this process). With ``load_before_serving`` the startup waits for the model and fails if
    it cannot be served; worker processes sharing one port use this, so that no worker accepts
    requests before it can answer them.
    """
    return App(settings, data_plane, on_fatal, load_before_serving)
