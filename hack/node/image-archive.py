#!/usr/bin/env python3
"""Writes a one-layer image as a docker-archive tarball, the format `ctr images import` reads
and names like a registry would (`NAME:TAG` becomes the fully qualified default reference),
without a registry or an image builder. Used for the node's sandbox (pause) image.

    image-archive.py OUT.tar NAME:TAG ENTRYPOINT FILE=PATH_IN_IMAGE[:MODE] ...
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile


def layer(files: list[str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for spec in files:
            src, _, dest = spec.partition("=")
            dest, _, mode = dest.partition(":")
            data = open(src, "rb").read()  # noqa: SIM115
            info = tarfile.TarInfo(dest.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), int(mode or "755", 8), 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def main(out: str, ref: str, entrypoint: str, *files: str) -> None:
    blob = layer(list(files))
    diff_id = "sha256:" + hashlib.sha256(blob).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [entrypoint], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": f"hack/node/image-archive.py {ref}"}],
    }
    config_blob = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_blob).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]
    with tarfile.open(out, "w") as tar:
        for name, data in (
            ("layer.tar", blob),
            (config_name, config_blob),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
