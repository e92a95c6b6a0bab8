"""Tiny real HTTP servers that count what they receive (stand-ins for model servers)."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Backend:
    name: str
    port: int = 0
    received: Counter[str] = field(default_factory=Counter)
    """Requests by kind: live, mirrored."""
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def count(self, kind: str, body: bytes) -> None:
        with self.lock:
            self.received[kind] += 1
            self.bodies.append(body)


@contextmanager
def serving(*names: str) -> Iterator[dict[str, Backend]]:
    """HTTP servers on loopback answering {"variant": name}, counting live and mirrored hits."""
    backends = {name: Backend(name) for name in names}
    servers = []
    for backend in backends.values():

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            me = backend

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = "mirrored" if self.headers.get("X-Mlops-Mirrored") else "live"
                self.me.count(kind, body)
                out = json.dumps({"variant": self.me.name}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        backend.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        yield backends
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
