"""A built-in load generator: rows of the training data sent through the router, each answer
followed by its ground truth as feedback, so the variants' online accuracy shows."""

from __future__ import annotations

import http.client
import json
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlops_operator.traffic.split import VARIANT_HEADER

USERS = 500
"""Distinct sticky keys sent for an A/B test."""


@dataclass
class Rows:
    """Requests ready to send: one OIP v2 body per row, with the row's true target."""

    bodies: list[bytes]
    truths: list[Any]

    @classmethod
    def from_frame(cls, frame: Any, target: Any) -> Rows:
        bodies, truths = [], []
        for (_, row), truth in zip(frame.iterrows(), target, strict=True):
            if any(isinstance(v, float) and math.isnan(v) for v in row.to_numpy()):
                continue
            bodies.append(json.dumps({"inputs": [_tensor(k, v) for k, v in row.items()]}).encode())
            truths.append(truth.item() if hasattr(truth, "item") else truth)
        return cls(bodies, truths)


def shifted(frame: Any) -> Any:
    """The frame with every numeric column moved well away from its training values (twice
    the value plus one standard deviation): served, it drifts."""
    out = frame.copy()
    for column in out.select_dtypes("number").columns:
        out[column] = out[column] * 2 + out[column].std()
    return out


def _tensor(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": name, "shape": [1], "datatype": "BYTES", "data": [value]}
    return {"name": name, "shape": [1], "datatype": "FP64", "data": [float(value)]}


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    by_variant: Counter[str] = field(default_factory=Counter)


class LoadGenerator(threading.Thread):
    """Sends ``rps`` requests a second to ``/v2/models/<model>/infer`` until stopped."""

    def __init__(
        self,
        *,
        port: int,
        model: str,
        rows: Rows,
        rps: float,
        sticky_header: str | None = None,
        headers: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        drifted: Rows | None = None,
        drift_after: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(name=f"load-{model}", daemon=True)
        self.port, self.model, self.rows, self.rps = port, model, rows, rps
        self.sticky_header = sticky_header
        self.headers = headers or {}
        self.host = host
        self.drifted = drifted
        """Sent instead of ``rows`` from ``drift_after`` seconds on (a drift to react to)."""
        self.drift_after = drift_after
        self.started = time.monotonic()
        self.random = random.Random(seed)
        self.tally = Tally()
        self.halt = threading.Event()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)

    def run(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        period = 1.0 / self.rps
        next_at = time.monotonic()
        while not self.halt.is_set():
            try:
                self._one(connection)
            except (OSError, http.client.HTTPException):
                self.tally.failed += 1
                connection.close()
            next_at += period
            self.halt.wait(max(0.0, next_at - time.monotonic()))

    def _one(self, connection: http.client.HTTPConnection) -> None:
        rows = self.rows
        if self.drifted is not None and time.monotonic() - self.started >= self.drift_after:
            rows = self.drifted
        index = self.random.randrange(len(rows.bodies))
        headers = {"Content-Type": "application/json", **self.headers}
        if self.sticky_header:
            headers[self.sticky_header] = f"user-{self.random.randrange(USERS)}"
        path = f"/v2/models/{self.model}"
        # An id of its own in the body, as a client that sends feedback later does: a shadow's
        # mirrored copy then carries the same id, so the feedback counts on both variants.
        body = b'{"id": "load-%d", ' % self.tally.sent + rows.bodies[index][1:]
        response, answer = _post(connection, f"{path}/infer", body, headers)
        variant = response.getheader(VARIANT_HEADER, "unknown")
        self.tally.sent += 1
        self.tally.by_variant[variant] += 1
        if response.status != 200:
            self.tally.failed += 1
            return
        feedback = {"id": json.loads(answer)["id"], "truth": [rows.truths[index]]}
        headers = {"Content-Type": "application/json"}  # the router finds the variant
        _post(connection, f"{path}/feedback", json.dumps(feedback).encode(), headers)


def _post(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[http.client.HTTPResponse, bytes]:
    """POST on a keep-alive connection; once more on a new one if the server had closed it
    (nginx closes idle connections when it reloads), as HTTP clients do."""
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        connection.close()
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
    return response, response.read()
