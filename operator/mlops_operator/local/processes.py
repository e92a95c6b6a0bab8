"""Child processes that never outlive the runner: own process groups, a parent-death signal,
and a registry of pids on disk so `mlops local down` can stop them from another terminal."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM when the runner dies, even by SIGKILL."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


RUNNING: dict[int, Child] = {}
"""Every child started and not yet stopped, by pid."""


def running() -> dict[str, int]:
    """Name to pid of the children alive now."""
    return {child.name: pid for pid, child in list(RUNNING.items()) if child.alive()}


def mlops_command(*args: str) -> list[str]:
    """The `mlops` CLI of this very installation, whatever is on PATH."""
    return [sys.executable, "-m", "mlops_operator", *args]


def start(name: str, command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Child:
    """Start ``command`` in its own process group, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            # Safe with threads: one prctl call on a libc loaded before the fork.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
    child = Child(name, process, log)
    RUNNING[child.pid] = child
    return child


def terminate_group(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if it outlives ``grace``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def group_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(child: Child, grace: float = 10.0) -> None:
    terminate_group(child.pid, grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.process.wait(timeout=1)
    RUNNING.pop(child.pid, None)
