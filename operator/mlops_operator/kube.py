"""The one place the TrainingJob controller talks to the Kubernetes API (sync client).

Objects travel as plain camelCase dicts, exactly as the API serves them, so the pure status
functions read the same shapes as kopf's bodies. kopf runs sync handlers in worker threads;
the client is shared and thread-safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from mlops_operator.api import GROUP, VERSION

PLURAL = "trainingjobs"
MERGE_PATCH = "application/merge-patch+json"

_api: client.ApiClient | None = None


class Conflict(Exception):
    """The object changed since it was read (409 on a resourceVersion precondition)."""


def configure() -> None:
    """Loads the in-cluster config, else the kubeconfig ($KUBECONFIG), like kopf does."""
    global _api  # noqa: PLW0603
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    _api = client.ApiClient()


def api() -> client.ApiClient:
    if _api is None:
        configure()
    assert _api is not None
    return _api


def _json(response: Any) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(response.data))


def _missing(error: ApiException) -> bool:
    return bool(error.status == 404)


def get_trainingjob(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _json(
            client.CustomObjectsApi(api()).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
            )
        )
    except ApiException as error:
        if _missing(error):
            return None
        raise


def list_trainingjobs(namespace: str, selector: str) -> list[dict[str, Any]]:
    found = _json(
        client.CustomObjectsApi(api()).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector=selector, _preload_content=False
        )
    )
    return list(found.get("items") or [])


def create_trainingjob(namespace: str, body: Mapping[str, Any]) -> bool:
    """Creates the TrainingJob; False when one of that name exists already (409)."""
    try:
        client.CustomObjectsApi(api()).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, dict(body)
        )
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def delete_trainingjob(namespace: str, name: str) -> None:
    try:
        client.CustomObjectsApi(api()).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, propagation_policy="Background"
        )
    except ApiException as error:
        if not _missing(error):
            raise


def patch_trainingjob_status(
    namespace: str, name: str, status: Mapping[str, Any], resource_version: str | None
) -> None:
    """Merges ``status`` into the status; with a resourceVersion, only onto that version."""
    body: dict[str, Any] = {"status": dict(status)}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    try:
        client.CustomObjectsApi(api()).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict(f"TrainingJob {namespace}/{name} changed; read it again") from error
        raise


def get_job(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _json(
            client.BatchV1Api(api()).read_namespaced_job(name, namespace, _preload_content=False)
        )
    except ApiException as error:
        if _missing(error):
            return None
        raise


def create_job(namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """Creates the Job and returns it; None when one of that name exists already (409)."""
    try:
        return _json(
            client.BatchV1Api(api()).create_namespaced_job(
                namespace,
                dict(body),  # type: ignore[arg-type]
                _preload_content=False,
            )
        )
    except ApiException as error:
        if error.status == 409:
            return None
        raise


def delete_job(namespace: str, name: str) -> None:
    """Deletes the Job and (in the background) its Pods."""
    try:
        client.BatchV1Api(api()).delete_namespaced_job(
            name, namespace, propagation_policy="Background"
        )
    except ApiException as error:
        if not _missing(error):
            raise


def list_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    found = _json(
        client.CoreV1Api(api()).list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False
        )
    )
    return list(found.get("items") or [])
