"""Publishing an artifact to the model store, atomically and never over an existing version.

The artifact (see :mod:`model_server.artifact`) is first written completely to a local
temporary directory. Then:

- local stores (``file://``, ``pvc://``): copied into a hidden temporary directory next to the
  destination (``.tmp-<version>-<random>``, same filesystem) and renamed into place; the
  rename is atomic, so a reader sees the whole artifact or nothing.
- object stores (``s3://`` and any other fsspec URI): ``model.skops``, ``model.onnx`` (when
  there is one) and ``metadata.json`` are uploaded first and the ``digest`` file last; a
  version directory without ``digest`` is incomplete and must be ignored (the model server
  and the operator never pin one). A failed upload removes what it wrote.

A version that already exists (locally: the directory; remotely: any object under the
prefix) is never overwritten: publishing fails with PublishError.
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
from trainer.errors import PublishError, TrainerError

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 1
"""Fast deflate: most of the size gain (trees compress ~8x) for a fraction of the time."""


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


def files_of(onnx: bytes | None) -> tuple[str, ...]:
    """The artifact's files, the digest last."""
    return (MODEL_FILE, *((ONNX_FILE,) if onnx is not None else ()), METADATA_FILE, DIGEST_FILE)


def write_local(
    directory: Path, model: bytes, metadata: Metadata, onnx: bytes | None = None
) -> str:
    """Write the artifact's files into ``directory``; the digest."""
    (directory / MODEL_FILE).write_bytes(model)
    if onnx is not None:
        (directory / ONNX_FILE).write_bytes(onnx)
    (directory / METADATA_FILE).write_text(
        json.dumps(metadata.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n"
    )
    digest = compute_digest(directory)
    (directory / DIGEST_FILE).write_text(digest + "\n")
    for name in files_of(onnx):
        with (directory / name).open("rb") as handle:
            os.fsync(handle.fileno())
    return digest


def artifact_uri(store_uri: str, namespace: str, name: str, version: str) -> str:
    return store.join(store_uri, namespace, name, version)


def publish(
    store_uri: str,
    *,
    namespace: str,
    name: str,
    version: str,
    model: bytes,
    metadata: Metadata,
    onnx: bytes | None = None,
) -> tuple[str, str]:
    """Publish the artifact (with model.onnx when ``onnx`` is given); its (uri, digest)."""
    uri = artifact_uri(store_uri, namespace, name, version)
    try:
        local = store.local_path(uri)
    except store.StoreError as error:
        raise PublishError(f"model store: {error}") from None
    if local is not None:
        return uri, _publish_local(local, uri, model, metadata, onnx)
    return uri, _publish_remote(uri, model, metadata, onnx)


def _publish_local(
    destination: Path, uri: str, model: bytes, metadata: Metadata, onnx: bytes | None
) -> str:
    if destination.exists():
        raise PublishError(f"model store: version {uri} already exists; it is never overwritten")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{destination.name}-", dir=destination.parent))
    except OSError as error:
        raise PublishError(f"model store {uri}: cannot write ({error.strerror or error})") from None
    try:
        digest = write_local(staging, model, metadata, onnx)
        staging.chmod(0o755)
        if destination.exists():
            raise PublishError(
                f"model store: version {uri} already exists; it is never overwritten"
            )
        os.rename(staging, destination)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise PublishError(f"model store {uri}: cannot write ({error.strerror or error})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return digest


def _publish_remote(uri: str, model: bytes, metadata: Metadata, onnx: bytes | None) -> str:
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
            digest = write_local(Path(scratch), model, metadata, onnx)
            for name in files_of(onnx):
                remote = f"{path.rstrip('/')}/{name}"
                fs.put_file(str(Path(scratch) / name), remote)
                written.append(remote)
        return digest
    except Exception as error:
        for remote in written:
            # Best effort: a directory without its digest file is incomplete anyway.
            with contextlib.suppress(Exception):
                fs.rm_file(remote)
        if isinstance(error, TrainerError):  # already exists, or terminated meanwhile
            raise
        detail = " ".join(str(error).split())[:300]
        raise PublishError(
            f"model store {uri}: cannot write ({type(error).__name__}: {detail})"
        ) from None
