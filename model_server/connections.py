"""Hostile clients at the connection level: the deadlines and the cap uvicorn lacks.

uvicorn's httptools protocol closes a connection only after a response (keep-alive): one that
sends nothing, half its headers or part of its body stays open for ever, and enough of them
exhaust the process's file descriptors, health probe included. :class:`GuardedProtocol` adds

- a header deadline from a connection's (or a keep-alive request's) first byte to the end of
  its headers, and a body deadline from there to the end of its body;
- a connection cap: a connection beyond it evicts the one idle the longest (no request in
  progress: headers not complete yet, or waiting in keep-alive), and is refused with 503 only
  when every connection is busy, so idle connections cannot keep a probe out;
- a lingering close: a response sent before the body was read (a 413 on Content-Length) is
  followed by reading and discarding the rest of the body before the socket closes, or the
  client, still sending, would get a reset instead of the answer;
- writes after the client went away dropped (and counted), not raised into the application.

Each of these is counted in :class:`ServerEvents` (``mlops_server_events_total``), not logged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from model_server.events import ServerEvents

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: 52\r\n\r\n"
    b'{"error": "too many connections: every one is busy"}'
)


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    body_timeout: float
    max_connections: int


@dataclass(frozen=True)
class Guard:
    """What the protocol needs from the application: found on it as ``connection_guard``."""

    limits: Limits
    events: ServerEvents


def _guard_of(app: Any) -> Guard:
    while not isinstance(getattr(app, "connection_guard", None), Guard):
        app = app.app  # uvicorn's middlewares wrap the application as .app
    guard: Guard = app.connection_guard
    return guard


class GuardedTransport:
    """A request's view of the connection: writes after the client left are dropped; a close
    while the request's body is still coming lingers until it has been read."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: GuardedProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            self._protocol.guard.events.count("client_gone")
            return
        self._transport.write(data)

    def close(self) -> None:
        if self._protocol.body_pending and not self._transport.is_closing():
            self._protocol.linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, a connection cap and a lingering close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = _guard_of(self.app)
        self.idle_since: float | None = None
        """Monotonic time since when no request is in progress; None while one is."""
        self.body_pending = False
        self._lingering = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.idle_since = time.monotonic()
        self._arm("header_timeout", self.guard.limits.header_timeout)
        if len(self.connections) > self.guard.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self.idle_since is not None and self._deadline is None:  # a keep-alive request
            self._arm("header_timeout", self.guard.limits.header_timeout)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        self.idle_since = None
        self.body_pending = True
        self._arm("body_timeout", self.guard.limits.body_timeout)
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = GuardedTransport(self.transport, self)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._disarm()
        self.body_pending = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is None or self.cycle.response_complete:
            self.idle_since = time.monotonic()

    def linger(self) -> None:
        """Answered before the body was read: stop sending, discard the body, then close."""
        self._lingering = True
        self._disarm()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(
            min(self.guard.limits.body_timeout, 5.0), self.transport.close
        )

    def _make_room(self) -> None:
        idle = [
            c
            for c in self.connections
            if c is not self and isinstance(c, GuardedProtocol) and c.idle_since is not None
        ]
        if idle:
            self.guard.events.count("connection_evicted")
            min(idle, key=lambda c: c.idle_since or 0.0).transport.close()
            return
        self.guard.events.count("connection_refused")
        self.transport.write(BUSY)
        self.transport.close()

    def _arm(self, event: str, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, event)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, event: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.guard.events.count(event)
            self.transport.close()
