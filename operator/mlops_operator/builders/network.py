"""Who may steer a rollout: a ModelDeployment's NetworkPolicies and its feedback Secret. Pure.

- ``<name>-model-servers``: the model servers' inference ports (REST and gRPC) take only the
  ModelDeployment's router Pods when the entry Service points at a router of ours; with a
  gateway or mesh provider the entry Service is the stable servers themselves, so the
  inference ports stay open to whoever reaches the Service (the gateway's own policies
  apply). Their metrics port takes only ``metrics_from`` (the operator, and Prometheus when
  configured).
- ``<name>-router``: the router Pods take clients on their HTTP port and nothing else.
- the Secret ``<name>-feedback`` holds the token a client presents to give feedback; the
  operator creates it once (a random token) and never reads or rewrites it;
- the Secret ``<name>-router-token`` holds the token by which the builtin router proves a
  request came through it (traffic.proof), created once the same way. It is not a key of
  ``<name>-feedback``: whoever is given the feedback token must not be able to pass for the
  router, and a Secret the operator created before it existed would never get the key.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from mlops_operator.builders.serving import GRPC_PORT, METRICS_PORT, PORT
from mlops_operator.objects import (
    FEEDBACK_TOKEN_KEY,
    feedback_secret_name,
    labels,
    router_name,
    router_token_secret_name,
    selector,
)
from mlops_operator.traffic.proof import SNIPPET_KEY, TOKEN_KEY, snippet
from mlops_operator.traffic.router import ROUTER_PORT

Peer = dict[str, Any]
"""A NetworkPolicyPeer: podSelector and/or namespaceSelector (or ipBlock)."""


def _policy(
    name: str, namespace: str, mdep: str, pods: dict[str, str], ingress: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(mdep, "network")},
        "spec": {
            "podSelector": {"matchLabels": pods},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def _ports(*numbers: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": number} for number in numbers]


def model_servers_policy_name(mdep: str) -> str:
    return f"{mdep}-model-servers"


def network_policies(
    mdep: str, namespace: str, *, to_router: bool, metrics_from: Sequence[Peer]
) -> list[dict[str, Any]]:
    """The policies of one ModelDeployment. An empty ``metrics_from`` leaves the metrics port
    open (no operator identity known: the chart always sets it)."""
    inference: dict[str, Any] = {"ports": _ports(PORT, GRPC_PORT)}
    if to_router:
        inference["from"] = [{"podSelector": {"matchLabels": selector(mdep, "router")}}]
    metrics: dict[str, Any] = {"ports": _ports(METRICS_PORT)}
    if metrics_from:
        metrics["from"] = [dict(peer) for peer in metrics_from]
    policies = [
        _policy(
            model_servers_policy_name(mdep),
            namespace,
            mdep,
            selector(mdep, "model-server"),
            [inference, metrics],
        )
    ]
    if to_router:
        policies.append(
            _policy(
                router_name(mdep),
                namespace,
                mdep,
                selector(mdep, "router"),
                [{"ports": _ports(ROUTER_PORT)}],
            )
        )
    return policies


def feedback_secret(mdep: str, namespace: str, token: str) -> dict[str, Any]:
    """The Secret with the feedback token (``token``: random, from the caller)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": feedback_secret_name(mdep),
            "namespace": namespace,
            "labels": labels(mdep, "feedback"),
        },
        "type": "Opaque",
        "data": {FEEDBACK_TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def router_token_secret(mdep: str, namespace: str, token: str) -> dict[str, Any]:
    """The Secret with the router's proof (``token``: random, from the caller): the token for
    the model servers and the nginx snippet that sends it, for the router Pods."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": router_token_secret_name(mdep),
            "namespace": namespace,
            "labels": labels(mdep, "router"),
        },
        "type": "Opaque",
        "data": {TOKEN_KEY: _b64(token), SNIPPET_KEY: _b64(snippet(token))},
    }
