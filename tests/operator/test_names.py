"""The longest names the API accepts leave room for every name the operator derives."""

from __future__ import annotations

from mlops_operator.api.common import NAME_MAX
from mlops_operator.api.modeldeployment import NAME_MOST
from mlops_operator.objects import VARIANTS, job_name, router_name, run_name, variant_name


def test_the_longest_modeldeployment_name_leaves_room_for_its_children() -> None:
    name = "m" * NAME_MOST
    derived = [router_name(name), *(variant_name(name, variant) for variant in VARIANTS)]
    assert max(len(child) for child in derived) == NAME_MAX


def test_the_longest_trainingjob_name_gives_a_job_and_runs_within_bounds() -> None:
    name = "t" * NAME_MAX
    assert len(job_name(name)) <= NAME_MAX
    assert len(run_name(name, "202612020300")) <= NAME_MAX
