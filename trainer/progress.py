"""Progress lines on stderr while a run works: readable text, or one JSON object per line."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO


class Progress:
    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, message: str, level: str = "info", **fields: Any) -> None:
        if self.fmt == "json":
            record = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": level,
                "logger": "mlops.train",
                "message": message,
                "elapsed": round(self.elapsed(), 3),
                **fields,
            }
            line = json.dumps(record, default=str)
        else:
            prefix = "" if level == "info" else f"{level}: "
            line = f"[{self.elapsed():7.2f}s] {prefix}{message}"
        print(line, file=self.stream, flush=True)
