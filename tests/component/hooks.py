"""A webhook receiver on loopback: records every POST (path, JSON body, arrival time) and
answers each path with the status code a test sets (200 by default); a path can also be slow,
to stand for a sink that is down but accepts connections."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    at: float


@dataclass
class HookServer:
    host: str = "127.0.0.1"
    port: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.received if r.path == path]


def _handler(server: HookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with server.lock:
                server.received.append(Received(self.path, body, time.monotonic()))
                code = server.codes.get(self.path, 200)
                delay = server.delays.get(self.path, 0.0)
            time.sleep(delay)
            answer = json.dumps({"path": self.path, "code": code}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


@contextmanager
def hook_server(host: str = "127.0.0.1") -> Iterator[HookServer]:
    """The receiver on ``host`` (the node's address for an operator in a Pod)."""
    state = HookServer(host)
    httpd = ThreadingHTTPServer((host, 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
