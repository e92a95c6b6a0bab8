"""Where a request came from: the ``source`` label of the metrics the analysis reads. Pure.

The builtin router proves a request came through it with the header ``X-Mlops-Router``
holding a token from the ModelDeployment's Secret ``<name>-router-token`` (nginx overwrites a
client's own copy). A server started with that token (``--router-token``) labels a request
``source="router"`` only when the header matches it (compared in constant time), and
``source="direct"`` otherwise: a client that reaches a server directly, or forges the header,
cannot move the series the analysis counts. A server without a router token can verify
nothing: every request is ``direct`` (the analysis of a ModelDeployment behind a gateway or a
mesh counts both sources).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from model_server.metric_names import DIRECT, ROUTED, ROUTER_HEADER

HEADER_KEY = ROUTER_HEADER.lower().encode()
"""The header as ASGI (and gRPC metadata) spells it: lower case."""


class Provenance:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    def of(self, presented: bytes | None) -> str:
        """The source of a request that presented ``presented`` (None: no header)."""
        if self._token is None or presented is None:
            return DIRECT
        return ROUTED if hmac.compare_digest(presented.strip(), self._token) else DIRECT

    def of_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The source of a request with these (lower-case name, value) headers; a request
        with several copies of the header is judged by the first."""
        return self.of(next((value for key, value in headers if key == HEADER_KEY), None))
