"""The one place the operator talks to the Kubernetes API (sync: kopf runs handlers in threads).

Objects travel as plain camelCase dicts, exactly as the API serves them, so the pure builders
and status functions read the same shapes as kopf's bodies. Children are written with
server-side apply (field manager ``mlops-operator``, forced): applying the same desired object
twice is a no-op, and a restarted operator simply applies again.

Every failure is a :class:`KubeError`; ``controllers/errors.py`` maps them to kopf's retries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client, config

from mlops_operator import __version__, metrics
from mlops_operator.objects import KINDS, LEASE, Kind
from mlops_operator.traffic.providers import PROVIDER_KINDS

FIELD_MANAGER = "mlops-operator"
USER_AGENT = f"mlops-operator/{__version__}"
"""Names the operator's own requests in the API server's audit log (kopf's say kopf/...)."""
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
_KINDS: dict[str, Kind] = {kind.kind: kind for kind in (*KINDS, *PROVIDER_KINDS, LEASE)}

_api: client.ApiClient | None = None


class KubeError(Exception):
    """The API server refused or failed a request."""

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message
        """The API server's own words (its Status message), e.g. ``Service "x" is invalid:
        metadata.name: ...``."""


class NotFound(KubeError):
    """The object does not exist."""


class MissingKind(NotFound):
    """The API server does not serve this kind (e.g. the Gateway API CRDs are not installed)."""


class Conflict(KubeError):
    """The object changed since it was read (409 on a resourceVersion precondition)."""


class Replaced(Conflict):
    """An apply naming a uid that no object of that name has: the one meant went (409 "uid
    mismatch"), maybe for another object of its name (422 "metadata.uid ... immutable")."""


class AlreadyExists(KubeError):
    """An object of that name exists (409 on create)."""


def configure(connections: int = 10) -> None:
    """Loads the in-cluster config, else the kubeconfig ($KUBECONFIG), like kopf does;
    ``connections``: how many requests may be in flight at once (one per handler thread)."""
    global _api  # noqa: PLW0603
    settings = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=settings)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            os.environ.get("KUBECONFIG"),  # read now, not when the library was imported
            client_configuration=settings,
        )
    settings.connection_pool_maxsize = connections
    _api = client.ApiClient(settings)
    _api.user_agent = USER_AGENT


def api() -> client.ApiClient:
    if _api is None:
        configure()
    assert _api is not None
    return _api


def kind(name: str) -> Kind:
    return _KINDS[name]


def _path(kind_: Kind, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    prefix = "/api/v1" if kind_.api_version == "v1" else f"/apis/{kind_.api_version}"
    path = f"{prefix}/namespaces/{namespace}/{kind_.plural}"
    if name:
        path += f"/{name}"
    return f"{path}/{sub}" if sub else path


def _call(
    verb: str,
    kind_: Kind,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    """One request (counted by verb and resource); the answer's JSON, or a KubeError for any
    status from 400 on."""
    metrics.API_REQUESTS.labels(verb, kind_.plural).inc()
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    method_, url, headers_, body_, post = api().param_serialize(
        method,
        path,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api().call_api(method_, url, header_params=headers_, body=body_, post_params=post)
    data = response.read()  # type: ignore[no-untyped-call]
    if response.status < 400:
        return cast(dict[str, Any], json.loads(data)) if data else {}
    text = data.decode(errors="replace") if data else ""
    message = f"{method} {path}: {response.status} {response.reason}: {text[:800]}"
    detail = _status_message(text)
    if response.status == 404:
        raise NotFound(message, 404, detail)
    if response.status == 409:
        raise Conflict(message, 409, detail)
    raise KubeError(message, response.status, detail)


def _status_message(text: str) -> str:
    """The message of a Status the API server answered with; empty when it is not one."""
    try:
        status = json.loads(text)
    except ValueError:
        return ""
    return str(status.get("message") or "") if isinstance(status, dict) else ""


def get(kind_: Kind, namespace: str, name: str) -> dict[str, Any] | None:
    """The object, None when it (or its kind) does not exist."""
    try:
        return _call("get", kind_, "GET", _path(kind_, namespace, name))
    except NotFound:
        return None


def list_(kind_: Kind, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The objects matching a label selector (``a=1,b=2``)."""
    found = _call(
        "list", kind_, "GET", _path(kind_, namespace), query=[("labelSelector", selector)]
    )
    return list(found.get("items") or [])


def create(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """Creates the object and returns it; None when one of that name exists already."""
    meta, kind_ = obj["metadata"], kind(obj["kind"])
    try:
        return _call("create", kind_, "POST", _path(kind_, meta["namespace"]), body=dict(obj))
    except Conflict:
        return None


def replace(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Replaces the object; its metadata.resourceVersion is the precondition (else Conflict)."""
    meta, kind_ = obj["metadata"], kind(obj["kind"])
    return _call(
        "update",
        kind_,
        "PUT",
        _path(kind_, meta["namespace"], meta["name"]),
        body=dict(obj),
        content_type="application/json",
    )


def apply(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Server-side apply of a desired object; returns the object as stored. With a
    metadata.uid, only onto the object of that uid (else :class:`Replaced`): the API server
    creates nothing then."""
    meta, kind_ = obj["metadata"], kind(obj["kind"])
    path = _path(kind_, meta["namespace"], meta["name"])
    try:
        return _call(
            "apply",
            kind_,
            "PATCH",
            path,
            body=json.dumps(obj),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type=APPLY_PATCH,
        )
    except NotFound as error:
        served = f"{obj['apiVersion']} {obj['kind']} is not served by the API server"
        raise MissingKind(f"{served}: {error}", 404, served) from None
    except KubeError as error:
        if meta.get("uid") and _uid_refused(error):
            raise Replaced(str(error), error.status, error.detail) from None
        raise


def _uid_refused(error: KubeError) -> bool:
    """A forced apply's answer when the object of its name has not the uid it names: 409
    (none has it: the only precondition a forced apply can fail) or 422 on metadata.uid."""
    return error.status == 409 or (error.status == 422 and "metadata.uid:" in error.detail)


def delete(api_version: str, kind_name: str, namespace: str, name: str) -> bool:
    """Deletes the object (and, in the background, what it owns) if it exists; True when
    something went. A kind the server does not serve has nothing to delete."""
    try:
        _call(
            "delete",
            kind(kind_name),
            "DELETE",
            _path(kind(kind_name), namespace, name),
            query=[("propagationPolicy", "Background")],
        )
    except NotFound:
        return False
    except KubeError as error:
        if error.status == 410:
            return False
        raise
    return True


def patch_status(
    kind_: Kind,
    namespace: str,
    name: str,
    status: Mapping[str, Any],
    resource_version: str | None = None,
) -> None:
    """Merges ``status`` into the status; with a resourceVersion, only onto that version."""
    body: dict[str, Any] = {"status": dict(status)}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    _call(
        "patch",
        kind_,
        "PATCH",
        _path(kind_, namespace, name, "status"),
        body=body,
        content_type=MERGE_PATCH,
    )


def replace_status(kind_: Kind, body: Mapping[str, Any]) -> None:
    """Replaces the whole status (the body's resourceVersion is the precondition)."""
    meta = body["metadata"]
    _call(
        "update",
        kind_,
        "PUT",
        _path(kind_, meta["namespace"], meta["name"], "status"),
        body=dict(body),
        content_type="application/json",
    )


def annotate(kind_: Kind, namespace: str, name: str, key: str, value: str) -> dict[str, Any]:
    """Sets one annotation (a merge patch of the metadata only: the spec is left alone)."""
    return _call(
        "patch",
        kind_,
        "PATCH",
        _path(kind_, namespace, name),
        body={"metadata": {"annotations": {key: value}}},
        content_type=MERGE_PATCH,
    )


def current_namespace() -> str:
    """The namespace of the kubeconfig's current context, else default (as kubectl does)."""
    try:
        _, context = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return "default"
    return str((context or {}).get("context", {}).get("namespace") or "default")
