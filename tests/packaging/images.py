"""The images hack/images/build.sh builds (docs/testing-cluster.md#the-images), for tests and
for the real-node fixture: their references and OCI archives, the chart values that use them,
the containerd import command, and buildah to look inside them without a container runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "hack" / "images" / "build.sh"
NAMES = ("base", "project", "router", "pause")
NODE_IMAGES = ("project", "router", "pause")
"""What a node needs; `build.sh import` loads these (the base is only a build input)."""
BUILD_TIMEOUT = 3600.0
"""A cold build takes 5-10 minutes (mostly pip inside the project image's build)."""


@dataclass(frozen=True)
class Image:
    name: str
    """base, project, router or pause."""
    ref: str
    """The image reference in the archive and, once imported, in containerd."""
    archive: Path
    """The OCI archive (`ctr images import` it, or `kind load image-archive`)."""

    @property
    def repository(self) -> str:
        return self.ref.rpartition(":")[0]

    @property
    def tag(self) -> str:
        return self.ref.rpartition(":")[2]


def _script(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
    done = subprocess.run(
        [str(SCRIPT), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{SCRIPT.name} {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
    return done.stdout


def images(env: Mapping[str, str] | None = None) -> dict[str, Image]:
    """The images and where their archives are (built or not)."""
    found = {}
    for name, line in zip(NAMES, _script("refs", env=env).splitlines(), strict=True):
        ref, _, archive = line.partition(" ")
        found[name] = Image(name, ref, Path(archive))
    return found


def build(env: Mapping[str, str] | None = None) -> dict[str, Image]:
    """Builds what is missing or stale (a no-op in a fraction of a second when warm)."""
    _script("build", env=env, timeout=BUILD_TIMEOUT)
    return images(env)


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    return Path(_script("dir", env=env).strip())


def import_command(ctr: Path, address: str) -> list[str]:
    """Builds if needed, then imports project, router and pause into containerd's k8s.io
    namespace: `<ctr> --address <address> --namespace k8s.io images import <archive>`."""
    return [str(SCRIPT), "import", str(ctr), address]


def chart_values(found: Mapping[str, Image]) -> dict[str, Any]:
    """Helm values that run the built images: nothing is ever pulled."""
    project = found["project"]
    return {
        "image": {"repository": project.repository, "tag": project.tag, "pullPolicy": "Never"},
        "operator": {"routerImage": found["router"].ref},
    }


class Buildah:
    """buildah on the build script's own storage (vfs, chroot isolation, no daemon)."""

    def __init__(self, cache: Path, runtime: Path | None = None) -> None:
        self.runtime = runtime
        self.base = [
            "buildah",
            "--root",
            str(cache / "storage"),
            "--runroot",
            str(cache / "run"),
            "--storage-driver",
            "vfs",
        ]

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode:
            raise RuntimeError(f"buildah {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
        return done.stdout

    def inspect(self, ref: str) -> dict[str, Any]:
        """The image's OCI config (User, Entrypoint, Cmd, Labels, ExposedPorts, ...)."""
        config: dict[str, Any] = json.loads(self("inspect", "--type", "image", ref))["OCIv1"][
            "config"
        ]
        return config

    @contextlib.contextmanager
    def container(self, ref: str, hosts: Mapping[str, str] | None = None) -> Iterator[str]:
        """A working container of ``ref`` (removed afterwards); ``hosts``: name -> address
        entries of its /etc/hosts."""
        extra = [f"--add-host={name}:{address}" for name, address in (hosts or {}).items()]
        name = self("from", "--pull=never", *extra, ref).strip()
        try:
            yield name
        finally:
            self("rm", name, check=False)

    def run_command(
        self,
        container: str,
        *command: str,
        user: str | None = None,
        volumes: Sequence[tuple[Path, str]] = (),
        env: Mapping[str, str] | None = None,
        isolation: str = "chroot",
    ) -> list[str]:
        """``isolation``: chroot, or oci (runc, in the host's network): runc gives the
        container's user its stdio, as in a Pod, so that it may reopen /dev/stderr."""
        args = [*self.base, "run", "--isolation", isolation]
        if isolation == "oci":
            args.append("--network=host")
            if self.runtime:
                args += ["--runtime", str(self.runtime)]
        if user:
            args += ["--user", user]
        for source, target in volumes:
            args += ["--volume", f"{source}:{target}"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        return [*args, container, "--", *command]

    def run(
        self,
        container: str,
        *command: str,
        user: str | None = None,
        volumes: Sequence[tuple[Path, str]] = (),
        env: Mapping[str, str] | None = None,
        isolation: str = "chroot",
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``command`` in ``container`` (the image's user unless ``user``)."""
        command_line = self.run_command(
            container, *command, user=user, volumes=volumes, env=env, isolation=isolation
        )
        return subprocess.run(
            command_line, capture_output=True, text=True, timeout=timeout, check=False
        )
