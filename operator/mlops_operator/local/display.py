"""What the terminal shows: the state file rendered as tables (live in `up`, once in `status`)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

_PHASE_STYLE = {
    "Succeeded": "green",
    "Promoted": "green",
    "Stable": "green",
    "Failed": "red",
    "RolledBack": "red",
    "Degraded": "red",
    "Running": "yellow",
    "Progressing": "yellow",
    "Paused": "cyan",
}


def _phase(phase: str | None) -> Text:
    return Text(phase or "Pending", style=_PHASE_STYLE.get(phase or "", "dim"))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def training_table(jobs: dict[str, Any]) -> Table:
    table = Table(title="TrainingJobs", title_justify="left", expand=True)
    for column in ("name", "phase", "score", "version", "message"):
        table.add_column(column, overflow="fold")
    for name, job in jobs.items():
        model = job.get("model") or {}
        table.add_row(
            name,
            _phase(job.get("phase")),
            job.get("score") or "-",
            model.get("version", "-"),
            job.get("message") or "",
        )
    return table


def deployment_table(name: str, deployment: dict[str, Any], running: bool = True) -> Table:
    status = deployment.get("status") or {}
    analysis = status.get("analysis") or {}
    title = Text(f"ModelDeployment {name}  ")
    title.append_text(_phase(status.get("phase")))
    if analysis.get("verdict"):
        title.append(f" (last analysis: {analysis['verdict']})")
    title.append(f"  {status.get('url', '')}")
    table = Table(
        title=title,
        title_justify="left",
        caption=status.get("message") or analysis.get("message") or "",
        caption_justify="left",
        expand=True,
    )
    for column in ("variant", "model", "ready", "weight", "requests", "errors", "p99", "accuracy"):
        table.add_column(column)
    for variant in ("stable", "canary"):
        served = status.get(variant)
        if not served:
            continue
        numbers = analysis.get(variant) or (deployment.get("served") or {}).get(variant) or {}
        table.add_row(
            variant,
            served.get("model", "-"),
            f"{served.get('readyReplicas', 0)}/{served.get('replicas', 1)}" if running else "-",
            f"{served.get('weight', 0)}%",
            f"{numbers.get('requests', 0):g}",
            _percent(numbers.get("errorRate")),
            _number(numbers.get("latencyP99Ms"), "ms"),
            _percent(numbers.get("accuracy")),
        )
    return table


def render(state: dict[str, Any]) -> Group:
    parts: list[Any] = []
    running = state.get("running", True)
    if state.get("trainingJobs"):
        parts.append(training_table(state["trainingJobs"]))
    for name, deployment in (state.get("modelDeployments") or {}).items():
        parts.append(deployment_table(name, deployment, running))
    events = state.get("events") or []
    if events:
        parts.append(Text("\n".join(events[-6:]), style="dim"))
    return Group(*parts)


def screen(state: dict[str, Any]) -> Group:
    """What `mlops local status` shows: the tables and whether `up` still runs."""
    running = state.get("running", False)
    line = "running" if running else f"not running (stopped {state.get('stopped')})"
    return Group(render(state), Text(line))
