"""A ModelDeployment's rollout as text: `mlops get [-w]` and `mlops history`. Pure.

The live view (`get -w`) keeps every analysis interval it has seen (:func:`interval`), so the
numbers of each interval stay on the screen while the status only holds the last one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

VARIANT_COLUMNS = ("VARIANT", "MODEL", "DIGEST", "READY", "WEIGHT")
INTERVAL_COLUMNS = ("JUDGED", "WEIGHT", "VERDICT", "CANARY", "STABLE")
HISTORY_COLUMNS = ("STARTED", "FINISHED", "MODEL", "DIGEST", "OUTCOME", "MESSAGE")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def _digest(value: str | None) -> str:
    return (value or "-").removeprefix("sha256:")[:12]


def numbers(variant: Mapping[str, Any] | None) -> str:
    """One variant's interval numbers in a few words."""
    if not variant:
        return "-"
    parts = [f"req={variant.get('requests', 0):g}"]
    if variant.get("errorRate") is not None:
        parts.append(f"err={variant['errorRate']:.2%}")
    if variant.get("latencyP99Ms") is not None:
        parts.append(f"p99={variant['latencyP99Ms']:.0f}ms")
    if variant.get("accuracy") is not None:
        parts.append(f"acc={variant['accuracy']:.2%}")
    return " ".join(parts)


def interval(status: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The row of the last judged interval (None before the first verdict)."""
    analysis = status.get("analysis") or {}
    if not analysis.get("verdict"):
        return None
    return (
        str(analysis.get("judged") or analysis.get("time") or "-")[11:19],
        f"{analysis.get('weight', status.get('canaryWeight', 0))}%",
        str(analysis["verdict"]),
        numbers(analysis.get("canary")),
        numbers(analysis.get("stable")),
    )


def render(body: Mapping[str, Any], intervals: Sequence[Sequence[str]] = ()) -> str:
    """The rollout of one ModelDeployment: phase, variants, intervals, conditions."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    control = status.get("control") or {}
    traffic = spec.get("traffic") or {}
    lines = [
        f"Name:      {meta.get('namespace')}/{meta.get('name')}",
        f"Strategy:  {spec.get('strategy', 'canary')}  steps={traffic.get('steps', '-')}",
        f"Phase:     {status.get('phase') or 'Pending'}"
        + ("  (paused by hand)" if control.get("paused") else ""),
        f"Message:   {status.get('message') or ''}",
    ]
    if status.get("url"):
        lines.append(f"URL:       {status['url']}")
    if control.get("command"):
        lines.append(f"Command:   {control['command']}: {control.get('message', '')}")
    rows = []
    for variant in ("stable", "canary", "preview"):
        served = status.get(variant)
        if served:
            rows.append(
                (
                    variant,
                    str(served.get("model") or "-"),
                    _digest(served.get("digest")),
                    f"{served.get('readyReplicas', 0)}/{served.get('replicas', 0)}",
                    f"{served.get('weight', 0)}%",
                )
            )
    lines += ["", *_table(VARIANT_COLUMNS, rows)]
    last = interval(status)
    shown = [tuple(row) for row in intervals]
    if last is not None and (not shown or shown[-1] != last):
        shown.append(last)
    if shown:
        lines += ["", "Analysis:", *_table(INTERVAL_COLUMNS, shown)]
    conditions = status.get("conditions") or []
    if conditions:
        lines += ["", "Conditions:"]
        lines += _table(
            ("TYPE", "STATUS", "REASON", "MESSAGE"),
            [
                (c["type"], c["status"], c.get("reason", ""), (c.get("message") or "")[:80])
                for c in conditions
            ],
        )
    return "\n".join(lines)


def history(body: Mapping[str, Any]) -> str:
    """The past rollouts of a ModelDeployment and how each ended, oldest first."""
    records = (body.get("status") or {}).get("history") or []
    if not records:
        return "no rollouts yet"
    rows = [
        (
            r.get("started") or "-",
            r.get("finished") or "-",
            str(r.get("model") or "-"),
            _digest(r.get("digest")),
            r.get("outcome") or "Progressing",
            (r.get("message") or "")[:70],
        )
        for r in records
    ]
    return "\n".join(_table(HISTORY_COLUMNS, rows))
