"""Leader election's arithmetic (mlops_operator.lease): who may take a Lease, and when."""

from __future__ import annotations

import datetime

import pytest

from mlops_operator.lease import Seen, Timing, claim, free_for, observe, released

TIMING = Timing(duration=15, renew_deadline=10, retry=2)
WALL = datetime.datetime(2026, 12, 2, 4, 0, tzinfo=datetime.UTC)


def held(by: str, renewed: str = "2026-12-02T03:59:59.000000Z") -> dict[str, object]:
    return {"holderIdentity": by, "leaseDurationSeconds": 15, "renewTime": renewed}


def test_a_lease_held_by_another_is_free_only_after_its_duration_without_renewal() -> None:
    spec = held("a")
    seen = observe(spec, None, now=100.0)
    assert not free_for(spec, "b", seen, 114.0, TIMING)
    assert free_for(spec, "b", observe(spec, seen, 115.5), 115.5, TIMING)


def test_a_renewal_restarts_the_wait() -> None:
    seen = observe(held("a"), None, now=100.0)
    renewed = held("a", "2026-12-02T04:00:10.000000Z")
    seen = observe(renewed, seen, now=112.0)
    assert seen == Seen(("a", "2026-12-02T04:00:10.000000Z"), 112.0)
    assert not free_for(renewed, "b", seen, 120.0, TIMING)


def test_its_own_or_a_released_lease_is_free_at_once() -> None:
    seen = observe(held("a"), None, now=0.0)
    assert free_for(held("a"), "a", seen, 0.0, TIMING)
    gone = released(held("a"), WALL)
    assert gone["holderIdentity"] is None
    assert free_for(gone, "b", observe(gone, seen, 0.1), 0.1, TIMING)


def test_claiming_counts_transitions_and_keeps_the_acquire_time_on_renewal() -> None:
    taken = claim(held("a"), "b", WALL, TIMING)
    assert taken["holderIdentity"] == "b"
    assert taken["leaseTransitions"] == 1
    assert taken["acquireTime"] == taken["renewTime"] == "2026-12-02T04:00:00.000000Z"
    later = claim(taken, "b", WALL + datetime.timedelta(seconds=2), TIMING)
    assert later["acquireTime"] == taken["acquireTime"]
    assert later["renewTime"] == "2026-12-02T04:00:02.000000Z"
    assert later["leaseTransitions"] == 1


def test_the_leader_gives_up_before_a_standby_may_take_over() -> None:
    with pytest.raises(ValueError, match="renew deadline < lease duration"):
        Timing(duration=10, renew_deadline=10, retry=2)
