"""Model store URIs: file://, pvc://<claim>/<path>, s3://, through fsspec.

``pvc://<claim>/<path>`` names a PersistentVolumeClaim that the Pod mounts at
``<MLOPS_PVC_ROOT>/<claim>`` (default ``/var/lib/mlops/pvc``); on a workstation the
variable points at any directory, so the same URIs work with no cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import fsspec

PVC_ROOT_ENV = "MLOPS_PVC_ROOT"
DEFAULT_PVC_ROOT = "/var/lib/mlops/pvc"
S3_ENDPOINT_ENV = "MLOPS_S3_ENDPOINT_URL"


class StoreError(Exception):
    """A model store URI that cannot be used."""


def pvc_root() -> Path:
    return Path(os.environ.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT))


def local_path(uri: str) -> Path | None:
    """The local filesystem path of a file:// or pvc:// URI (or a plain path); None otherwise."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return Path(parts.netloc + parts.path if parts.netloc else parts.path)
    if parts.scheme == "pvc":
        if not parts.netloc:
            raise StoreError(f"{uri!r}: a pvc:// URI needs a claim name, pvc://<claim>/<path>")
        return pvc_root() / parts.netloc / parts.path.lstrip("/")
    return None


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and path for ``uri``."""
    path = local_path(uri)
    if path is not None:
        return fsspec.filesystem("file"), str(path)
    parts = urlsplit(uri)
    if parts.scheme == "s3" and not parts.netloc:
        raise StoreError(f"{uri!r}: an s3:// URI needs a bucket name, s3://<bucket>/<path>")
    options: dict[str, object] = {}
    if parts.scheme == "s3" and os.environ.get(S3_ENDPOINT_ENV):
        options["client_kwargs"] = {"endpoint_url": os.environ[S3_ENDPOINT_ENV]}
    try:
        fs, fs_path = fsspec.core.url_to_fs(uri, **options)
    except (ImportError, ValueError) as error:
        raise StoreError(f"{uri!r}: unsupported model store URI ({error})") from error
    return fs, fs_path


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def fetch_directory(uri: str, destination: Path | None) -> Path:
    """A local directory with the content of ``uri``: the directory itself when it is local,
    else ``destination`` (needed then) filled with a copy."""
    path = local_path(uri)
    if path is not None:
        if not path.is_dir():
            raise StoreError(f"{uri!r}: no such artifact directory")
        return path
    if destination is None:
        raise StoreError(f"{uri!r}: a remote artifact needs a directory to be copied to")
    fs, fs_path = filesystem(uri)
    try:
        if not fs.isdir(fs_path):
            raise StoreError(f"{uri!r}: no such artifact directory")
        destination.mkdir(parents=True, exist_ok=True)
        for remote in fs.ls(fs_path, detail=False):
            fs.get(remote, str(destination / Path(remote).name))
    except StoreError:
        raise
    except Exception as error:  # the object store's own errors: credentials, network, access
        raise StoreError(
            f"{uri!r}: cannot read the store: {type(error).__name__}: {error}"
        ) from error
    return destination
