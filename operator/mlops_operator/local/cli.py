"""`mlops local`: run TrainingJob and ModelDeployment manifests on this machine."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live

from mlops_operator.cli_options import manifest_paths
from mlops_operator.local import display
from mlops_operator.local.home import Home, default_home
from mlops_operator.local.processes import pid_alive, terminate_group
from mlops_operator.manifests import ManifestError

home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State, logs and the model store [default: $MLOPS_LOCAL_HOME or ~/.local/state/mlops].",
)


def _home(path: Path | None) -> Home:
    return Home((path or default_home()).resolve())


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    from mlops_operator.canary.machine import seconds  # the API models: not for --help

    try:
        interval = seconds(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if interval <= 0:
        raise click.BadParameter(f"duration {value!r} must be longer than 0")
    return interval


@click.group()
def local() -> None:
    """Run the same manifests on this machine: no cluster needed."""


@local.command()
@manifest_paths
@click.option(
    "--traffic",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Send this many requests a second of the training data (with feedback).",
)
@click.option("--watch", is_flag=True, help="Keep serving after the rollout ends (Ctrl-C stops).")
@click.option(
    "--analyses",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="abTest, shadow and a fixed canaryWeight never end by themselves: stop after this "
    "many judged analysis intervals.",
)
@click.option(
    "--drift-after",
    type=click.FloatRange(min=0),
    help="From this many seconds on, --traffic sends its rows shifted away from the training "
    "data: a drift for spec.retraining to react to.",
)
@click.option(
    "--interval",
    callback=lambda _ctx, _param, value: _duration(value),
    metavar="DURATION",
    help="Judge each analysis interval after this long (e.g. 5s) instead of the manifests' "
    "traffic.interval: a quick local try of a manifest meant for a cluster.",
)
@home_option
def up(  # noqa: PLR0917 (click passes every option)
    paths: tuple[Path, ...],
    traffic: float,
    watch: bool,
    analyses: int,
    drift_after: float | None,
    interval: float | None,
    home: Path | None,
) -> None:
    """Train the TrainingJobs, serve the ModelDeployments and roll their canaries out.

    Exits when every rollout has ended (a canary with steps: promoted or rolled back; abTest,
    shadow and a fixed canaryWeight: after --analyses judged intervals): 0 when promoted or
    stable or judged, 2 when rolled back, 1 on an error. TrainingJobs named by a
    ModelDeployment but not given are taken from an earlier run in the same --home.
    """
    from mlops_operator.local.runner import LocalError, Runner  # heavy: sklearn, nginx, ...

    try:
        runner = Runner(
            _home(home),
            paths,
            traffic=traffic,
            watch=watch,
            analyses=analyses,
            drift_after=drift_after,
            interval=interval,
        )
        code = runner.up()
    except (ManifestError, LocalError) as error:
        _fail(str(error))
    sys.exit(code)


@local.command()
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.option("-w", "--watch", is_flag=True, help="Refresh every second until Ctrl-C.")
@home_option
def status(output: str, watch: bool, home: Path | None) -> None:
    """Show what `mlops local up` is doing, or did last."""
    where = _home(home)
    if where.read_state() is None:
        _fail(f"nothing has run with home {where.root}")
    if output == "json":
        click.echo(json.dumps(_state(where), indent=2, sort_keys=True))
        return
    console = Console(width=max(shutil.get_terminal_size((120, 40)).columns, 100))
    if not watch:
        console.print(display.screen(_state(where)))
        return
    with contextlib.suppress(KeyboardInterrupt), Live(console=console) as live:
        while True:
            live.update(display.screen(_state(where)))
            time.sleep(1)


def _state(where: Home) -> dict[str, Any]:
    state = where.read_state() or {}
    state["running"] = bool(state.get("pid")) and pid_alive(state["pid"])
    return state


@local.command()
@click.argument("name", required=False)
@click.option("-n", "--lines", type=int, default=40, help="How many of the last lines.")
@home_option
def logs(name: str | None, lines: int, home: Path | None) -> None:
    """Print the logs of a process (train-*, serve-*, router-*), or list them."""
    directory = _home(home).logs
    files = sorted(directory.glob("*.log")) if directory.exists() else []
    if name is None:
        for path in files:
            click.echo(path.stem)
        return
    matches = [path for path in files if path.stem == name or path.stem.startswith(name)]
    if not matches:
        _fail(f"no log named {name!r}; `mlops local logs` lists them")
    for path in matches:
        click.echo(f"==> {path.stem} <==")
        click.echo("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))


@local.command()
@click.option("--timeout", type=float, default=30.0, help="Seconds to wait for a clean stop.")
@home_option
def down(timeout: float, home: Path | None) -> None:
    """Stop `mlops local up` and every process it started."""
    where = _home(home)
    state = where.read_state() or {}
    pid = state.get("pid")
    if pid and pid_alive(pid):
        signal_and_wait(pid, timeout)
    leftovers = {name: p for name, p in (state.get("processes") or {}).items() if pid_alive(p)}
    for child in leftovers.values():
        terminate_group(child, grace=5)
    click.echo(f"stopped ({len(leftovers)} leftover processes)" if leftovers else "stopped")


def signal_and_wait(pid: int, timeout: float) -> None:
    import os

    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
