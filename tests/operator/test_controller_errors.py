"""Which answers of the API server are a problem of the spec (a condition), which are retried."""

from __future__ import annotations

import pytest

from mlops_operator import kube
from mlops_operator.controllers.errors import problem

INVALID = (
    'Service "iris-stable" is invalid: metadata.name: Invalid value: "iris-stable": '
    "must be no more than 63 characters"
)


def test_a_refused_child_is_a_problem_in_the_api_servers_words() -> None:
    found = problem(kube.KubeError("PATCH ...: 422 Unprocessable Entity: {...}", 422, INVALID))
    assert found is not None
    assert found.reason == "ChildRejected"
    assert found.message == f"the API server refused a child: {INVALID}"


def test_a_kind_the_server_does_not_serve_says_what_to_install() -> None:
    served = "gateway.networking.k8s.io/v1 HTTPRoute is not served by the API server"
    found = problem(kube.MissingKind(f"{served}: PATCH ...: 404", 404, served))
    assert found is not None
    assert found.reason == "MissingKind"
    assert found.message.startswith(served)
    assert "install that kind's CRDs" in found.message


def test_a_typed_patch_500_is_a_problem_of_the_object() -> None:
    detail = "failed to create typed patch object (/x; apps/v1, Kind=Deployment): quantities ..."
    found = problem(kube.KubeError("PATCH ...: 500", 500, detail))
    assert found is not None
    assert found.reason == "ChildRejected"


@pytest.mark.parametrize("status", [409, 429, 500, 503, None])
def test_passing_trouble_is_retried(status: int | None) -> None:
    assert problem(kube.KubeError("etcdserver: request timed out", status)) is None
