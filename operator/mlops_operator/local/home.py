"""The local runner's home: model store, logs, runtime files and the state file.

The state file is what `mlops local status` reads from another terminal: the runner's pid,
its children, and each resource's status in the same shape as on a cluster.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HOME_ENV = "MLOPS_LOCAL_HOME"
MAX_EVENTS = 200


def default_home() -> Path:
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "mlops"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def prepare(self) -> None:
        for path in (self.models, self.logs, self.run):
            path.mkdir(parents=True, exist_ok=True)

    def read_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def write_state(self, state: dict[str, Any]) -> None:
        """Atomically: a reader never sees half a file."""
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
        temporary.replace(self.state_file)
