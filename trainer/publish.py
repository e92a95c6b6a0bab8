"""Publishing an artifact to the model store, atomically and never over an existing version.

The artifact (see :mod:`model_server.artifact`) and the run's report are written whole, the
metadata after the model and the digest last, then:

- local stores (``file://``, ``pvc://``): written and synced into a hidden directory next to
  the destination (``.tmp-<version>-<random>``, same filesystem) and renamed into place; the
  rename is atomic, so a reader sees the whole version or nothing. A failure removes the
  hidden directory (and the parents it created); one that a killed attempt left is removed
  by the next attempt.
- object stores (``s3://`` and any other fsspec URI): ``model.skops``, ``model.onnx`` (when
  there is one), ``metadata.json`` and the report are uploaded first and the ``digest`` file
  last; a version directory without ``digest`` is incomplete and must be ignored (the model
  server and the operator never pin one). A failed upload removes what it wrote; what it
  could not remove (the store went away) is cleared by the next attempt.

A version that already exists (locally: the directory; remotely: its digest object) is never
overwritten: publishing fails with PublishError. Why a write failed (the store unreachable,
full, or refusing) is told apart by :mod:`trainer.store_faults`, each with its exit code.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import skops.io as sio
from sklearn.pipeline import Pipeline

from model_server import store
from model_server.artifact import (
    DIGEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ONNX_FILE,
    Metadata,
    compute_digest,
)
from trainer import store_faults
from trainer.errors import PublishError, TrainerError

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 1
"""Fast deflate: most of the size gain (trees compress ~8x) for a fraction of the time."""
STAGING_PREFIX = ".tmp-"
"""Local stores: a version is written as ``.tmp-<version>-<random>`` beside it, then renamed."""


def new_version(now: datetime | None = None) -> str:
    """A version: the UTC time and a short random suffix, e.g. 20261122-101500-a1b2."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def serialize(pipeline: Pipeline) -> bytes:
    """The pipeline in the skops format, byte-stable for equal pipelines.

    skops writes a zip whose entries carry the current time and whose schema names objects by
    their ``id()``; both are normalised (fixed timestamps, ids renumbered in order of first
    appearance, entries sorted) so that the same model gives the same bytes, and so the same
    digest. The result is still an ordinary skops file.
    """
    schema, entries = _skops_parts(pipeline)
    renames: dict[str, str] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = int(renames.setdefault(str(value), str(len(renames))))
                elif key == "file" and isinstance(value, str) and value in entries:
                    suffix = Path(value).suffix
                    new = renames.setdefault(f"file:{value}", f"{len(renames)}{suffix}")
                    out[key] = new
                else:
                    out[key] = renumber(value)
            return out
        if isinstance(node, list | tuple):
            return [renumber(item) for item in node]
        return node

    schema = renumber(schema)
    files = {renames.get(f"file:{name}", name): data for name, data in entries.items()}
    files["schema.json"] = json.dumps(schema, sort_keys=True).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(
        buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL
    ) as target:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, files[name], compresslevel=ZIP_LEVEL)
    return buffer.getvalue()


def _skops_parts(pipeline: Pipeline) -> tuple[Any, dict[str, bytes]]:
    """The skops schema and the binary files it refers to, as ``skops.io.dumps`` makes them.

    This is ``skops.io._persist._save`` (skops is pinned) minus its final ``json.dumps(...,
    indent=2)``, which runs the pure-Python JSON encoder and, for a forest of a few hundred
    trees, takes longer than everything else here; the schema is encoded once, compactly, by
    :func:`serialize` instead. Should the private API move, the public ``dumps`` is used.
    """
    try:
        import skops
        from skops.io._utils import SaveContext, get_state
    except ImportError:  # pragma: no cover - a different skops
        with zipfile.ZipFile(io.BytesIO(sio.dumps(pipeline))) as source:
            entries = {info.filename: source.read(info) for info in source.infolist()}
        return json.loads(entries.pop("schema.json")), entries
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zip_file:
        context = SaveContext(zip_file=zip_file)
        state = get_state(pipeline, context)
        context.clear_memo()
        state["protocol"] = context.protocol
        state["_skops_version"] = skops.__version__
    with zipfile.ZipFile(buffer) as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}
    return state, entries


def files_of(onnx: bytes | None, extras: Mapping[str, bytes] | None = None) -> tuple[str, ...]:
    """The artifact's files in the order they are written: the metadata, then any extra files
    (the report), the digest last."""
    optional = (ONNX_FILE,) if onnx is not None else ()
    return (MODEL_FILE, *optional, METADATA_FILE, *sorted(extras or ()), DIGEST_FILE)


@dataclass(frozen=True)
class Artifact:
    """What one version holds: the skops model, its metadata, the compiled form when there is
    one, and files beside it that the digest does not cover (the HTML report)."""

    model: bytes
    metadata: Metadata
    onnx: bytes | None = None
    extras: Mapping[str, bytes] = field(default_factory=dict)

    def files(self) -> tuple[str, ...]:
        return files_of(self.onnx, self.extras)


def write_local(directory: Path, artifact: Artifact) -> str:
    """Write the artifact's files into ``directory`` (the digest last, everything synced); the
    digest."""
    (directory / MODEL_FILE).write_bytes(artifact.model)
    if artifact.onnx is not None:
        (directory / ONNX_FILE).write_bytes(artifact.onnx)
    metadata = artifact.metadata.model_dump(mode="json", by_alias=True)
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    for name, content in sorted(artifact.extras.items()):
        (directory / name).write_bytes(content)
    digest = compute_digest(directory)
    (directory / DIGEST_FILE).write_text(digest + "\n")
    for name in artifact.files():
        with (directory / name).open("rb") as handle:
            os.fsync(handle.fileno())
    return digest


def artifact_uri(store_uri: str, namespace: str, name: str, version: str) -> str:
    return store.join(store_uri, namespace, name, version)


def publish(
    store_uri: str, *, namespace: str, name: str, version: str, artifact: Artifact
) -> tuple[str, str]:
    """Publish the artifact as ``<store>/<namespace>/<name>/<version>``; its (uri, digest).

    A failure leaves no version behind and says why: StoreFullError, StoreDeniedError,
    StoreUnreachableError (see :mod:`trainer.store_faults`), or PublishError.
    """
    uri = artifact_uri(store_uri, namespace, name, version)
    try:
        local = store.local_path(uri)
    except store.StoreError as error:
        raise PublishError(f"model store: {error}") from None
    try:
        if local is not None:
            return uri, _publish_local(local, uri, artifact)
        return uri, _publish_remote(uri, artifact)
    except TrainerError:  # already exists, or terminated meanwhile
        raise
    except Exception as error:
        raise store_faults.publish_error(store_uri, uri, error) from None


def _exists(uri: str) -> PublishError:
    return PublishError(f"model store: version {uri} already exists; it is never overwritten")


def _publish_local(destination: Path, uri: str, artifact: Artifact) -> str:
    """Written into a hidden sibling directory, synced, then renamed into place (atomic)."""
    if destination.exists():
        raise _exists(uri)
    created = _make_parents(destination.parent)
    for stale in destination.parent.glob(f"{STAGING_PREFIX}{destination.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # what a killed attempt left
    staging: Path | None = None
    try:
        staging = Path(
            tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{destination.name}-", dir=destination.parent)
        )
        digest = write_local(staging, artifact)
        staging.chmod(0o755)
        if destination.exists():
            raise _exists(uri)
        os.rename(staging, destination)
        _sync_directory(destination.parent)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    return digest


def _make_parents(directory: Path) -> list[Path]:
    """mkdir -p; the directories it created, outermost first (removed again on failure)."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()][::-1]
    directory.mkdir(parents=True, exist_ok=True)
    return missing


def _sync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _publish_remote(uri: str, artifact: Artifact) -> str:
    """Uploaded file by file, the metadata and the digest last: a version without its digest
    object is incomplete (never pinned); one left by a failed attempt is cleared first."""
    fs, path = store.filesystem(uri)
    prefix = path.rstrip("/")
    if fs.exists(prefix):
        leftover = fs.ls(prefix, detail=False)
        if any(str(item).rstrip("/").endswith(f"/{DIGEST_FILE}") for item in leftover):
            raise _exists(uri)
        for item in leftover:  # incomplete: a failed attempt's files, never a version
            fs.rm(item, recursive=True)
    written: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mlops-artifact-") as scratch:
            digest = write_local(Path(scratch), artifact)
            for name in artifact.files():
                remote = f"{prefix}/{name}"
                fs.put_file(str(Path(scratch) / name), remote)
                written.append(remote)
        return digest
    except BaseException:
        for remote in written:
            # Best effort: a directory without its digest file is incomplete anyway, and the
            # next attempt clears it.
            with contextlib.suppress(Exception):
                fs.rm_file(remote)
        raise
