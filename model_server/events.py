"""What happens to a server that a log line per occurrence would flood: counted instead."""

from __future__ import annotations

import collections

EVENTS = (
    "header_timeout",
    "body_timeout",
    "connection_evicted",
    "connection_refused",
    "client_gone",
    "internal_error",
    "numeric_warning",
)
"""What ``mlops_server_events_total`` counts, by ``event``."""


class ServerEvents:
    """Counts of what happened to the server that a log line per occurrence would flood."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter(dict.fromkeys(EVENTS, 0))

    def count(self, event: str) -> None:
        self.counts[event] += 1
