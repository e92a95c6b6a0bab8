"""Where a request came from: the router's proof, and the source label it decides."""

from __future__ import annotations

import pytest

from model_server.metric_names import DIRECT, ROUTED
from model_server.metrics import Metrics
from model_server.provenance import HEADER_KEY, Provenance
from model_server.settings import ServerSettings

pytestmark = pytest.mark.unit
TOKEN = "Ab3_-" * 8


def test_only_the_router_token_proves_a_request_came_through_the_router() -> None:
    provenance = Provenance(TOKEN)
    assert HEADER_KEY == b"x-mlops-router"
    assert provenance.of(TOKEN.encode()) == ROUTED
    assert provenance.of(None) == DIRECT
    assert provenance.of(b"") == DIRECT
    assert provenance.of(TOKEN.encode()[:-1]) == DIRECT
    assert provenance.of(TOKEN.encode() + b"x") == DIRECT
    assert provenance.of(b"router") == DIRECT
    headers = [(b"content-type", b"application/json"), (HEADER_KEY, TOKEN.encode())]
    assert provenance.of_headers(headers) == ROUTED
    assert provenance.of_headers([(b"x-mlops-variant", b"canary")]) == DIRECT
    # a forged copy first is what is judged (nginx never sends two: it overwrites the client's)
    assert provenance.of_headers([(HEADER_KEY, b"forged"), (HEADER_KEY, TOKEN.encode())]) == DIRECT


def test_without_a_router_token_nothing_is_proved() -> None:
    """Safest: a server not told the token counts every request as direct (behind a gateway
    or a mesh the analysis counts both sources)."""
    provenance = Provenance(None)
    assert provenance.of(TOKEN.encode()) == DIRECT
    assert provenance.of(b"") == DIRECT
    assert Provenance("").of(b"") == DIRECT


def test_the_router_token_is_a_secret_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ROUTER_TOKEN", TOKEN)
    settings = ServerSettings(model_uri="/m", model_digest="sha256:" + "0" * 64)
    assert settings.router_token is not None
    assert settings.router_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)


def test_requests_latency_and_feedback_are_labelled_by_source() -> None:
    metrics = Metrics("iris", "canary")
    metrics.request(200, 0.01, ROUTED)
    metrics.request(200, 0.01, DIRECT)
    metrics.request(200, 0.01, DIRECT)
    text = metrics.exposition().decode()
    assert (
        'mlops_requests_total{code="200",model="iris",source="router",variant="canary"} 1.0' in text
    )
    assert (
        'mlops_requests_total{code="200",model="iris",source="direct",variant="canary"} 2.0' in text
    )
    assert (
        'mlops_request_duration_seconds_count{model="iris",source="router",variant="canary"} 1.0'
        in text
    )
