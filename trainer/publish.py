"""Publishing an artifact to the model store, atomically and never over an existing version.

The artifact (see :mod:`model_server.artifact`) is first written completely to a local
temporary directory. Then:

- local stores (``file://``, ``pvc://``): copied into a hidden temporary directory next to the
  destination (``.tmp-<version>-<random>``, same filesystem) and renamed into place; the
  rename is atomic, so a reader sees the whole artifact or nothing.
- object stores (``s3://`` and any other fsspec URI): ``model.skops`` and ``metadata.json``
  are uploaded first and the ``digest`` file last; a version directory without ``digest`` is
  incomplete and must be ignored (the model server and the operator never pin one). A failed
  upload removes what it wrote.

A version that already exists (locally: the directory; remotely: any object under the
prefix) is never overwritten: publishing fails with PublishError.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import tempfile
import zipfile
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
    Metadata,
    compute_digest,
)
from trainer.errors import PublishError

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


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
    raw = sio.dumps(pipeline)
    with zipfile.ZipFile(io.BytesIO(raw)) as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}
    schema = json.loads(entries.pop("schema.json"))
    renames: dict[str, str] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
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
        if isinstance(node, list):
            return [renumber(item) for item in node]
        return node

    schema = renumber(schema)
    files = {renames.get(f"file:{name}", name): data for name, data in entries.items()}
    files["schema.json"] = json.dumps(schema, sort_keys=True).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, files[name])
    return buffer.getvalue()


def write_local(directory: Path, model: bytes, metadata: Metadata) -> str:
    """Write the three files into ``directory``; the digest."""
    (directory / MODEL_FILE).write_bytes(model)
    (directory / METADATA_FILE).write_text(
        json.dumps(metadata.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True)
        + "\n"
    )
    digest = compute_digest(directory)
    (directory / DIGEST_FILE).write_text(digest + "\n")
    for name in (MODEL_FILE, METADATA_FILE, DIGEST_FILE):
        with (directory / name).open("rb") as handle:
            os.fsync(handle.fileno())
    return digest


def artifact_uri(store_uri: str, namespace: str, name: str, version: str) -> str:
    return store.join(store_uri, namespace, name, version)


def publish(
    store_uri: str, namespace: str, name: str, version: str, model: bytes, metadata: Metadata
) -> tuple[str, str]:
    """Publish the artifact; its (uri, digest)."""
    uri = artifact_uri(store_uri, namespace, name, version)
    try:
        local = store.local_path(uri)
    except store.StoreError as error:
        raise PublishError(f"model store: {error}") from None
    if local is not None:
        return uri, _publish_local(local, uri, model, metadata)
    return uri, _publish_remote(uri, model, metadata)


def _publish_local(destination: Path, uri: str, model: bytes, metadata: Metadata) -> str:
    if destination.exists():
        raise PublishError(f"model store: version {uri} already exists; it is never overwritten")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".tmp-{destination.name}-", dir=destination.parent)
        )
    except OSError as error:
        raise PublishError(f"model store {uri}: cannot write ({error.strerror or error})") from None
    try:
        digest = write_local(staging, model, metadata)
        staging.chmod(0o755)
        if destination.exists():
            raise PublishError(f"model store: version {uri} already exists; it is never overwritten")
        os.rename(staging, destination)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise PublishError(f"model store {uri}: cannot write ({error.strerror or error})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return digest


def _publish_remote(uri: str, model: bytes, metadata: Metadata) -> str:
    try:
        fs, path = store.filesystem(uri)
    except store.StoreError as error:
        raise PublishError(f"model store: {error}") from None
    written: list[str] = []
    try:
        if fs.exists(path) and fs.ls(path, detail=False):
            raise PublishError(
                f"model store: version {uri} already exists; it is never overwritten"
            )
        with tempfile.TemporaryDirectory(prefix="mlops-artifact-") as scratch:
            digest = write_local(Path(scratch), model, metadata)
            for name in (MODEL_FILE, METADATA_FILE, DIGEST_FILE):
                remote = f"{path.rstrip('/')}/{name}"
                fs.put_file(str(Path(scratch) / name), remote)
                written.append(remote)
        return digest
    except PublishError:
        raise
    except Exception as error:
        for remote in written:
            try:
                fs.rm_file(remote)
            except Exception:  # best effort: a directory without digest is incomplete anyway
                pass
        detail = " ".join(str(error).split())[:300]
        raise PublishError(f"model store {uri}: cannot write ({type(error).__name__}: {detail})") from None
