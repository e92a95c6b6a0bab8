"""Child processes that never outlive the test session.

Each child runs in its own process group (so its own children die with it), gets SIGKILL
from the kernel when the pytest process dies (PR_SET_PDEATHSIG), and is stopped by an
atexit hook if the session ends without tearing it down.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)
_running: list[Process] = []


class Process:
    def __init__(
        self,
        name: str,
        argv: Sequence[str | Path],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        cgroups: Sequence[Path] = (),
        append: bool = False,
    ) -> None:
        """`cgroups`: cgroup directories (one per v1 hierarchy) the child joins before exec,
        so that it and everything it starts can be found and killed later."""
        self.name = name
        self.argv = list(argv)
        self.log = log_dir / f"{name}.log"
        procs = [str(c / "cgroup.procs") for c in cgroups]
        with self.log.open("ab" if append else "wb") as out:
            self.popen = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if env is None else dict(env),
                preexec_fn=lambda: _die_with_parent(procs),  # noqa: PLW1509 (prctl, cgroup.procs)
            )
        _running.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        if self in _running:
            _running.remove(self)
        if self.popen.returncode is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        _signal_group(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)


def stop_all() -> None:
    for proc in reversed(list(_running)):
        proc.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, watch: Sequence[Process] = ()
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in watch:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.25)
    logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in watch)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def _die_with_parent(cgroup_procs: Sequence[str] = ()) -> None:
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    for procs in cgroup_procs:
        with open(procs, "w") as out:
            out.write("0")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


atexit.register(stop_all)
