"""HTTP POSTs for rollout webhooks and notification sinks: JSON out, a timeout, retries.

Only the calls live here; what an answer means for the rollout is decided in
``canary/hooks.py`` and ``canary/machine.py``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_operator.api.modeldeployment import Webhook
from mlops_operator.canary.hooks import Kind, Outcome
from mlops_operator.canary.machine import seconds

BACKOFF_SECONDS = 0.2
"""Wait before retry n: n times this."""
USER_AGENT = "mlops-operator"


@dataclass(frozen=True)
class Result:
    """One hook's answer."""

    name: str
    kind: str
    ok: bool
    code: int | None
    message: str
    attempts: int


@dataclass(frozen=True)
class Hook:
    """What a call needs of a webhook spec (or a notification sink)."""

    name: str
    kind: str
    url: str
    timeout: float
    retries: int
    metadata: Mapping[str, str] | None = None

    @classmethod
    def from_spec(cls, hook: Webhook) -> Hook:
        return cls(
            hook.name, hook.type, hook.url, seconds(hook.timeout), hook.retries, hook.metadata
        )


def post(url: str, body: Mapping[str, Any], timeout: float) -> tuple[int | None, str]:
    """One POST; the status code (None when none came) and the start of the answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read(500).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read(500).decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return None, str(reason)


def call(hook: Hook, body: Mapping[str, Any]) -> Result:
    """POSTs until a 2xx answer or the retries are spent (a 4xx is not retried)."""
    code: int | None = None
    text = ""
    attempts = 0
    for attempt in range(hook.retries + 1):
        if attempt:
            time.sleep(BACKOFF_SECONDS * attempt)
        attempts += 1
        code, text = post(hook.url, body, hook.timeout)
        if code is not None and (200 <= code < 300 or 400 <= code < 500):
            break
    ok = code is not None and 200 <= code < 300
    said = f"HTTP {code}" if code is not None else "no answer"
    message = f"{hook.name}: {said}" + (f": {text.strip()[:200]}" if text.strip() else "")
    return Result(hook.name, hook.kind, ok, code, message, attempts)


def statuses(results: Iterable[Result]) -> list[dict[str, Any]]:
    """The results as status.webhooks entries."""
    out = []
    for r in results:
        entry: dict[str, Any] = {"name": r.name, "type": r.kind, "ok": r.ok}
        entry.update(message=r.message[:500], attempts=r.attempts)
        if r.code is not None:
            entry["code"] = r.code
        out.append(entry)
    return out


def run(hooks: Iterable[Hook], kind: Kind, body: Mapping[str, Any]) -> tuple[Outcome, list[Result]]:
    """Calls every hook of one kind in turn; ok when all answered 2xx."""
    results = [
        call(hook, {**body, "metadata": dict(hook.metadata or {})})
        for hook in hooks
        if hook.kind == kind
    ]
    failed = [r.message for r in results if not r.ok]
    if failed:
        return Outcome(False, "; ".join(failed)), results
    return Outcome(True, "; ".join(r.message for r in results)), results
