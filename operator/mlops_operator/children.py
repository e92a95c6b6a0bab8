"""The one place the ModelDeployment controller talks to the Kubernetes API.

Children are written with server-side apply (field manager ``mlops-operator``, forced), so
applying the same desired object twice is a no-op and a restarted operator simply applies
again. Objects are plain dicts as the API serves them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from mlops_operator import kube
from mlops_operator.api import GROUP, VERSION

FIELD_MANAGER = "mlops-operator"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
PLURALS: dict[str, str] = {
    "Deployment": "deployments",
    "Service": "services",
    "ConfigMap": "configmaps",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "HTTPRoute": "httproutes",
    "VirtualService": "virtualservices",
    "ModelDeployment": "modeldeployments",
    "TrainingJob": "trainingjobs",
}


class MissingKind(Exception):
    """The API server does not serve this kind (e.g. the Gateway API CRDs are not installed)."""


def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


def _call(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str | None = None,
) -> dict[str, Any] | None:
    """One request; None for a 404 on GET/DELETE; MissingKind for other 404s."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    api = kube.api()
    method_, url, headers_, body_, post = api.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method_, url, header_params=headers_, body=body_, post_params=post)
    data = response.read()  # type: ignore[no-untyped-call]
    if response.status == 404:
        if method in ("GET", "DELETE"):
            return None
        raise MissingKind(f"{path}: not found")
    if response.status >= 400:
        text = data.decode(errors="replace")[:800] if data else ""
        raise ApiException(status=response.status, reason=f"{response.reason}: {text}")
    return cast(dict[str, Any], json.loads(data)) if data else {}


def apply(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Server-side apply of a desired object; returns the object as stored."""
    meta = obj["metadata"]
    path = _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    result = _call(
        "PATCH",
        path,
        body=json.dumps(obj),
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        content_type=APPLY_PATCH,
    )
    assert result is not None
    return result


def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _call("GET", _path(api_version, kind, namespace, name))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def delete(api_version: str, kind: str, namespace: str, name: str) -> bool:
    """Deletes the object if it exists (and the kind is served); True when something went."""
    try:
        return (
            _call(
                "DELETE",
                _path(api_version, kind, namespace, name),
                query=[("propagationPolicy", "Background")],
            )
            is not None
        )
    except ApiException as error:
        if error.status in (404, 410):
            return False
        raise


def list_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    found = _call(
        "GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)]
    )
    return list((found or {}).get("items") or [])


def list_trainingjobs(namespace: str, selector: str) -> list[dict[str, Any]]:
    return kube.list_trainingjobs(namespace, selector)


def get_trainingjob(namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get_trainingjob(namespace, name)


def get_modeldeployment(namespace: str, name: str) -> dict[str, Any] | None:
    return get(f"{GROUP}/{VERSION}", "ModelDeployment", namespace, name)


def patch_modeldeployment_status(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """A merge patch of the status subresource."""
    path = _path(f"{GROUP}/{VERSION}", "ModelDeployment", namespace, name) + "/status"
    _call("PATCH", path, body={"status": dict(status)}, content_type=MERGE_PATCH)


class Conflict(Exception):
    """The object changed since it was read."""


def replace_modeldeployment_status(body: Mapping[str, Any]) -> None:
    """Replaces the whole status (the body's resourceVersion is the precondition)."""
    meta = body["metadata"]
    path = _path(f"{GROUP}/{VERSION}", "ModelDeployment", meta["namespace"], meta["name"])
    try:
        _call("PUT", path + "/status", body=dict(body), content_type="application/json")
    except ApiException as error:
        if error.status == 409:
            raise Conflict(f"ModelDeployment {meta['namespace']}/{meta['name']} changed") from error
        raise
