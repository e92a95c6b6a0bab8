"""The local runner's promotion, router side: the promoted server joins the feedback pool
before any prediction goes to it. No process runs: the router and servers are stand-ins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_operator.api import ModelDeployment
from mlops_operator.canary import Decision, RolloutState
from mlops_operator.local import rollout as local_rollout
from mlops_operator.local.home import Home

pytestmark = pytest.mark.unit
V1 = {"uri": "file:///m/v1", "digest": "sha256:" + "1" * 64}
V2 = {"uri": "file:///m/v2", "digest": "sha256:" + "2" * 64}


class Server:
    def __init__(self, name: str) -> None:
        self.address = name

    def wait_until_ready(self) -> None:
        return None


class Router:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str, list[str], list[str]]] = []

    def configure(self, split: Any, stable: Any, canary: Any, retired: Any = ()) -> bool:
        live = [stable.address] + ([canary.address] if canary and split.canary else [])
        pool = live + [server.address for server in retired]
        self.calls.append((split.canary_weight, stable.address, live, pool))
        return True


def test_the_promoted_server_takes_feedback_before_it_takes_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx's reload lets old workers accept beside new ones for a moment: a prediction the
    switched configuration makes must find its feedback through the one before it too (the
    local soak's 404 at its promotion)."""
    deployment = ModelDeployment.model_validate(
        {
            "metadata": {"name": "iris"},
            "spec": {
                "stable": {"model": {"uri": V1["uri"], "digest": V1["digest"]}},
                "canary": {"model": {"uri": V2["uri"], "digest": V2["digest"]}},
                "traffic": {"steps": [50], "interval": "10s"},
            },
        }
    )
    rollout = local_rollout.LocalRollout(Home(tmp_path), deployment, {}, 0, lambda _: None)
    router = Router()
    rollout.router = router  # type: ignore[assignment]
    rollout.stable = Server("old-stable")  # type: ignore[assignment]
    rollout.canary = Server("canary")  # type: ignore[assignment]
    monkeypatch.setattr(rollout, "_serve", lambda variant, model: Server("new-stable"))
    rollout.state = RolloutState(phase="Progressing", canary=V2["digest"], weight=50)
    promoted = RolloutState(phase="Promoted", canary=V2["digest"])
    rollout._act(Decision("promote", promoted, "Promoted", "promoted"))
    first, last = router.calls[0], router.calls[-1]
    assert first[:3] == (50, "old-stable", ["old-stable", "canary"])  # the split as it was
    assert "new-stable" in first[3]  # ...but the promoted server already takes feedback
    assert last[2] == ["new-stable"]
    assert {"old-stable", "canary"} <= set(last[3])
    assert rollout.stable.address == "new-stable"
