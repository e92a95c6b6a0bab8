"""A ModelDeployment's children as the operator last applied or saw them.

- an apply whose desired object is the one last applied (its hash is on the object, in
  ``mlops.dev/applied-hash``) is not sent again;
- a delete is sent only for a child that exists;
- an object of a child's name that this ModelDeployment does not own (no controller owner
  reference with its uid) is never applied over, adopted or deleted: :class:`NameClash`.

What is known comes from the operator's own requests and from the watch events of the child
kinds (:func:`Memory.seen`, fed by the controller), so an idle ModelDeployment sends no
request at all.

What is not known (a new child, or after a restart) is read once (a GET) before it is
written: the API server creates nothing on an apply that names a uid, so a new child cannot
skip that read. An apply onto a child known names its uid (``metadata.uid``), so that an
object of that name that replaced it since is refused (:class:`kube.Replaced`), read, and
left alone like any other (:class:`NameClash`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mlops_operator import kube
from mlops_operator.objects import Kind

HASH_ANNOTATION = "mlops.dev/applied-hash"
Key = tuple[str, str, str]
"""(kind, namespace, name)."""
Ref = tuple[str, str, str]
"""(apiVersion, kind, name) of a child to delete."""


class Client(Protocol):
    def get(self, kind_: Kind, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None: ...
    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...
    def delete(self, api_version: str, kind_name: str, namespace: str, name: str) -> bool: ...


class NameClash(kube.KubeError):
    """An object of a child's name exists and is not this ModelDeployment's."""

    def __init__(self, kind: str, name: str, owner: str) -> None:
        super().__init__(
            f"{kind} {name} exists and is not managed by this ModelDeployment ({owner}): "
            f"rename or delete it, or rename the ModelDeployment; it was left untouched",
            409,
        )
        self.kind, self.name = kind, name


@dataclass(frozen=True)
class Known:
    """One child as last seen: None for ``stored`` means it does not exist."""

    stored: dict[str, Any] | None
    hash: str | None = None
    owner: str | None = None
    generation: int | None = None
    version: int = 0


def desired_hash(obj: Mapping[str, Any]) -> str:
    """The desired object's hash, the hash annotation left out."""
    meta = obj["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != HASH_ANNOTATION}
    bare = {**obj, "metadata": {**meta, "annotations": annotations}}
    return hashlib.sha256(json.dumps(bare, sort_keys=True).encode()).hexdigest()[:20]


def _key(obj: Mapping[str, Any]) -> Key:
    return (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])


def _version(meta: Mapping[str, Any]) -> int:
    text = str(meta.get("resourceVersion") or "0")
    return int(text) if text.isdigit() else 0


def _controller(meta: Mapping[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


ROLLOUT_FIELDS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "terminatingReplicas",  # an old router Pod still answering: the canary's servers stay
)


def slim(stored: Mapping[str, Any]) -> dict[str, Any]:
    """What a reconciliation reads of a stored child (replicas, rollout status, owner): a
    few hundred bytes of each of the thousands of children remembered."""
    meta = stored.get("metadata") or {}
    keep = ("name", "namespace", "uid", "generation", "resourceVersion", "ownerReferences")
    out: dict[str, Any] = {
        "apiVersion": stored.get("apiVersion"),
        "kind": stored.get("kind"),
        "metadata": {k: meta[k] for k in keep if k in meta},
    }
    replicas = (stored.get("spec") or {}).get("replicas")
    if replicas is not None:
        out["spec"] = {"replicas": replicas}
    status = stored.get("status") or {}
    rollout_ = {field: status[field] for field in ROLLOUT_FIELDS if field in status}
    if rollout_:
        out["status"] = rollout_
    return out


def rollout(stored: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """What a reconciliation reads of a Deployment's status."""
    status = (stored or {}).get("status") or {}
    return tuple(status.get(field) for field in ROLLOUT_FIELDS)


def known_from(stored: Mapping[str, Any]) -> Known:
    meta = stored.get("metadata") or {}
    return Known(
        stored=slim(stored),
        hash=(meta.get("annotations") or {}).get(HASH_ANNOTATION),
        owner=_controller(meta),
        generation=meta.get("generation"),
        version=_version(meta),
    )


class Memory:
    """Every child the operator has seen, by kind, namespace and name; thread-safe."""

    def __init__(self) -> None:
        self._known: dict[Key, Known] = {}
        self._lock = threading.Lock()

    def get(self, key: Key) -> Known | None:
        with self._lock:
            return self._known.get(key)

    def put(self, key: Key, known: Known, *, force: bool = False) -> None:
        """Remembers the child, unless what is remembered is newer (events and answers to
        the operator's own requests may arrive in either order)."""
        with self._lock:
            before = self._known.get(key)
            newer = before is None or before.stored is None or known.version >= before.version
            if force or newer:
                self._known[key] = known

    def forget(self, key: Key) -> None:
        with self._lock:
            self._known.pop(key, None)

    def seen(self, event_type: str | None, obj: Mapping[str, Any]) -> bool:
        """A watch event of a child; True when it changes what a reconciliation decides on:
        the child went, someone else changed its spec, or a Deployment's rollout moved
        (the status of other kinds is not read)."""
        key = _key(obj)
        before = self.get(key)
        if event_type == "DELETED":
            self.put(key, Known(stored=None), force=True)
            return True
        now = known_from(obj)
        if before is not None and before.stored is not None and now.version < before.version:
            return False
        if before is not None and before.stored is not None and now.generation != before.generation:
            # A new spec that the operator did not apply: apply again, whatever its hash says.
            self.put(key, dataclasses.replace(now, hash=None))
            return True
        if before is not None and before.stored is not None:
            now = dataclasses.replace(now, hash=before.hash)  # what the operator last applied
        self.put(key, now)
        if before is None or obj.get("kind") != "Deployment":
            return before is None
        return rollout(before.stored) != rollout(now.stored)

    def __len__(self) -> int:
        with self._lock:
            return len(self._known)


MEMORY = Memory()
"""The operator process's memory of its children."""


class Children:
    """One ModelDeployment's children, applied and deleted through the memory."""

    def __init__(
        self, client: Client, memory: Memory, namespace: str, owner_uid: str, *, fresh: bool
    ) -> None:
        """``fresh``: the owner's first pass: no object can be its child yet, so nothing
        needs reading to be left alone."""
        self.client, self.memory = client, memory
        self.namespace, self.owner, self.fresh = namespace, owner_uid, fresh

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Applies the desired child unless it is what was last applied; the child as stored."""
        key = _key(obj)
        try:
            return self._apply_onto(obj, self._read(key, obj["kind"]))
        except kube.Replaced:  # the child known went, maybe for someone else's object
            return self._apply_onto(obj, self._read(key, obj["kind"], again=True))

    def _apply_onto(self, obj: dict[str, Any], known: Known) -> dict[str, Any]:
        """The apply onto the child known (its uid), or of a new one when none is."""
        key, digest = _key(obj), desired_hash(obj)
        if known.stored is not None and known.owner != self.owner:
            raise NameClash(obj["kind"], key[2], _owner_text(known))
        if known.stored is not None and known.hash == digest:
            return known.stored
        meta = {**obj["metadata"]}
        meta["annotations"] = {**(meta.get("annotations") or {}), HASH_ANNOTATION: digest}
        if uid := ((known.stored or {}).get("metadata") or {}).get("uid"):
            meta["uid"] = uid
        stored = self.client.apply({**obj, "metadata": meta})
        self.memory.put(key, known_from(stored))
        latest = self.memory.get(key)  # a watch event may already tell of a newer state
        return latest.stored if latest is not None and latest.stored else slim(stored)

    def create(self, obj: dict[str, Any]) -> None:
        """Creates a child that is written once (the feedback token's Secret) unless it is
        known to exist. The operator may not read Secrets, so one that exists already (409)
        is taken as its own: a clash with a user's Secret of that name is not detected."""
        key = _key(obj)
        known = self.memory.get(key)
        if known is not None and known.stored is not None:
            return
        created = self.client.create(obj)
        stored = created if created is not None else {**obj, "metadata": {**obj["metadata"]}}
        self.memory.put(key, known_from(stored))

    def none_yet(self, refs: Iterable[Ref]) -> None:
        """On the owner's first pass: none of these can be its children (later passes need
        not read them to know there is nothing of theirs to delete)."""
        if self.fresh:
            for _, kind_name, name in refs:
                key = (kind_name, self.namespace, name)
                if self.memory.get(key) is None:
                    self.memory.put(key, Known(stored=None))

    def ours(self, api_version: str, kind_name: str, name: str) -> bool:
        """The child exists and is ours (what :meth:`delete` would delete)."""
        key = (kind_name, self.namespace, name)
        self.none_yet([(api_version, kind_name, name)])
        known = self._read(key, kind_name, trust_absent=True)
        return known.stored is not None and known.owner == self.owner

    def delete(self, api_version: str, kind_name: str, name: str) -> bool:
        """Deletes the child if it exists and is ours; True when something went."""
        key = (kind_name, self.namespace, name)
        self.none_yet([(api_version, kind_name, name)])
        known = self._read(key, kind_name, trust_absent=True)
        if known.stored is None or known.owner != self.owner:
            return False
        gone = self.client.delete(api_version, kind_name, self.namespace, name)
        self.memory.put(key, Known(stored=None), force=True)
        return gone

    def _read(
        self, key: Key, kind_name: str, *, trust_absent: bool = False, again: bool = False
    ) -> Known:
        """What is known of the child, read from the API when nothing is (or ``again``: what
        is known is not so). A child known to be absent is read again before an apply:
        someone may have created one since."""
        known = self.memory.get(key)
        if known is not None and (known.stored is not None or trust_absent) and not again:
            return known
        stored = self.client.get(kube.kind(kind_name), self.namespace, key[2])
        known = known_from(stored) if stored is not None else Known(stored=None)
        if known.stored is None or known.owner == self.owner:
            self.memory.put(key, known)  # not someone else's: no watch event would tell of it
        return known


def _owner_text(known: Known) -> str:
    refs = ((known.stored or {}).get("metadata") or {}).get("ownerReferences") or []
    owners = [f"{r.get('kind')} {r.get('name')}" for r in refs if r.get("controller")]
    return f"controlled by {owners[0]}" if owners else "created by someone else"
