"""The images of hack/images/build.sh: the stamp logic (fast, on a copy of the script), and
the built images' contract (marker ``node``: it builds them, or reuses the cache), checked
with buildah without a container runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_operator.api.workload import TERMINATION_LOG as TERMINATION_MESSAGE_PATH
from mlops_operator.builders.job import build_job
from mlops_operator.defaults import RUN_AS
from mlops_operator.settings import OperatorSettings
from mlops_operator.traffic.nginx import HEALTH_PATH
from mlops_operator.traffic.proof import SNIPPET_KEY, snippet
from mlops_operator.traffic.router import RouterOptions, router_objects
from mlops_operator.traffic.split import VARIANT_HEADER, Split
from tests.corpus import EXAMPLES
from tests.node.realnode import node_binaries
from tests.operator.trainingjob_fixtures import trainingjob

from .images import REPO, Buildah, Image, build, cache_dir, chart_values, images

VERSION = "0.1.0"

# --- the stamps: a copy of the script on a small fake repository ---------------------------


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for path in (
        "hack/images/build.sh",
        "hack/images/router/nginx.conf",
        "hack/k8s/go.mod",
        "pyproject.toml",
        "Dockerfile",
        ".dockerignore",
        "README.md",
        "hack/image-requirements.txt",
    ):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, repo / path)
    for package in ("operator/mlops_operator", "model_server", "trainer"):
        (repo / package).mkdir(parents=True)
        (repo / package / "__init__.py").write_text(f'"""{package}"""\n')
    return repo


def script(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [str(repo / "hack/images/build.sh"), *args],
        env={**os.environ, "MLOPS_IMAGES_CACHE": str(repo.parent / "cache")},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def stamps(repo: Path) -> dict[str, str]:
    return {name: script(repo, "stamp", name).strip() for name in ("base", "project", "router")}


def test_paths_refs_and_status_need_no_build(fake_repo: Path) -> None:
    cache = fake_repo.parent / "cache"
    paths = script(fake_repo, "paths").split()
    assert [Path(p).parent for p in paths] == [cache] * 4
    assert all(p.endswith(".oci.tar") for p in paths)
    refs = [line.split()[0] for line in script(fake_repo, "refs").splitlines()]
    assert refs[1] == f"localhost/mlops-operator:{VERSION}"
    # Local names only: no registry host (CRI would otherwise try to pull them).
    assert all(ref.startswith("localhost/") for ref in refs)
    assert script(fake_repo, "status").split() == [
        *("base", "stale", "project", "stale", "router", "stale", "pause", "stale")
    ]
    assert not cache.exists()


def test_the_project_stamp_follows_the_build_context(fake_repo: Path) -> None:
    before = stamps(fake_repo)
    assert stamps(fake_repo) == before, "stable"
    assert all(len(value) == 16 for value in before.values())
    # Ignored by .dockerignore, or outside the context: nothing rebuilds.
    (fake_repo / "trainer/__pycache__").mkdir()
    (fake_repo / "trainer/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    (fake_repo / "docs").mkdir()
    (fake_repo / "docs/x.md").write_text("x\n")
    assert stamps(fake_repo) == before
    seen = {before["project"]}
    for path, text in (
        ("trainer/__init__.py", '"""changed"""\n'),
        ("trainer/new.py", "x = 1\n"),
        ("Dockerfile", "# changed\n"),
        ("hack/image-requirements.txt", "six==1.17.0\n"),
        ("README.md", "changed\n"),
    ):
        with (fake_repo / path).open("a") as f:
            f.write(text)
        now = stamps(fake_repo)
        assert now["base"] == before["base"], f"{path} does not rebuild the base"
        assert now["router"] == before["router"]
        assert now["project"] not in seen, f"{path} rebuilds the project image"
        seen.add(now["project"])


def test_the_script_and_the_router_config_are_inputs(fake_repo: Path) -> None:
    before = stamps(fake_repo)
    with (fake_repo / "hack/images/router/nginx.conf").open("a") as f:
        f.write("# changed\n")
    now = stamps(fake_repo)
    assert now["router"] != before["router"]
    assert (now["base"], now["project"]) == (before["base"], before["project"])
    with (fake_repo / "hack/images/build.sh").open("a") as f:
        f.write("# changed\n")
    after = stamps(fake_repo)
    assert all(after[name] != now[name] for name in after), "a new recipe rebuilds everything"


def test_fresh_needs_the_archive_and_a_matching_stamp(fake_repo: Path) -> None:
    cache = fake_repo.parent / "cache"
    (cache / "stamps").mkdir(parents=True)
    archive = Path(script(fake_repo, "paths").split()[2])  # the router's
    (cache / "stamps/router").write_text(script(fake_repo, "stamp", "router"))
    assert "router stale" in script(fake_repo, "status")  # no archive yet
    archive.write_bytes(b"an archive")
    assert "router fresh" in script(fake_repo, "status")
    (cache / "stamps/router").write_text("0123456789abcdef\n")
    assert "router stale" in script(fake_repo, "status")


# --- the built images (marker node) ---------------------------------------------------------

node = pytest.mark.node
build_timeout = pytest.mark.timeout(3600)  # a cold build takes 5-10 minutes


@pytest.fixture(scope="module")
def built() -> dict[str, Image]:
    if os.geteuid() != 0:
        pytest.skip("hack/images/build.sh needs root (mmdebstrap --mode=root, buildah storage)")
    return build()


@pytest.fixture(scope="module")
def bah(built: dict[str, Image]) -> Buildah:
    # The real node's runc (Debian's buildah only recommends one; none may be installed).
    return Buildah(cache_dir(), runtime=node_binaries() / "bin" / "runc")


@pytest.fixture(scope="module")
def project(bah: Buildah, built: dict[str, Image]) -> Iterator[str]:
    with bah.container(built["project"].ref) as name:
        yield name


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr}{done.stdout}"
    return done.stdout


def archived_config(archive: Path) -> tuple[str, dict[str, Any]]:
    """The reference and the image config inside an OCI archive, as containerd reads them."""
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> Any:
            member = tar.extractfile(f"blobs/{digest.replace(':', '/')}")
            assert member is not None
            return json.load(member)

        index_file = tar.extractfile("index.json")
        assert index_file is not None
        (manifest,) = json.load(index_file)["manifests"]
        config = blob(blob(manifest["digest"])["config"]["digest"])
        return manifest["annotations"]["org.opencontainers.image.ref.name"], config


@node
@build_timeout
def test_archives_name_their_images(built: dict[str, Image]) -> None:
    assert images() == built
    for image in built.values():
        ref, config = archived_config(image.archive)
        assert ref == image.ref
        assert config["os"] == "linux"
        assert config["architecture"] == "amd64"
    assert built["project"].ref == f"localhost/mlops-operator:{VERSION}"
    values = chart_values(built)
    assert values["image"]["repository"] == "localhost/mlops-operator"
    assert values["operator"]["routerImage"] == built["router"].ref


@node
@build_timeout
def test_project_image_contract(bah: Buildah, built: dict[str, Image], project: str) -> None:
    config = bah.inspect(built["project"].ref)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["mlops"]
    assert config["WorkingDir"] == "/tmp"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "mlops-operator"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    _, archived = archived_config(built["project"].archive)
    assert archived["config"]["User"] == "10001:10001"

    assert ok(bah.run(project, "mlops", "--version")).strip() == f"mlops, version {VERSION}"
    assert ok(bah.run(project, "id", "-u")).strip() == "10001"
    for command in ("train", "serve", "operator"):
        assert "Usage: mlops " + command in ok(bah.run(project, "mlops", command, "--help"))
    ok(bah.run(project, "python", "-c", "import sklearn, skops, kopf, pyarrow, s3fs, uvloop"))


@node
@build_timeout
def test_project_image_is_lean_and_has_no_setuid_files(bah: Buildah, project: str) -> None:
    found = ok(
        bah.run(
            project,
            "sh",
            "-c",
            "find / -xdev -type f -perm /6000; "
            "for tool in gcc cc make apt-get; do command -v $tool; done; "
            "ls -d /root/.cache /tmp/.cache /opt/mlops/lib/python3*/site-packages/pandas/tests; "
            "true",
            user="0:0",
        )
    )
    # apt-get stays (derived images may install packages); nothing else is expected.
    assert found.split() == ["/usr/bin/apt-get"], found
    # Bytecode is compiled at build time: a read-only root filesystem costs no import time.
    ok(bah.run(project, "sh", "-c", "ls /opt/mlops/lib/python3*/site-packages/trainer/__pycache__"))
    writable = ok(
        bah.run(
            project,
            "sh",
            "-c",
            "find / -xdev -writable ! -path '/proc/*' ! -path '/sys/*' ! -path '/dev/*' "
            "! -path '/run/*' 2>/dev/null; true",
        )
    ).split()
    assert set(writable) <= {"/tmp", "/var/tmp", "/var/lock"}, writable


@node
@build_timeout
def test_training_runs_in_the_image_as_the_job_builder_says(
    bah: Buildah, built: dict[str, Image], project: str, tmp_path: Path
) -> None:
    """The operator's Job for the quickstart's first model, run in the image as its Pod would:
    its user, command, arguments and environment; a writable claim and termination log."""
    settings = OperatorSettings(image=built["project"].ref)
    job = build_job(trainingjob("quickstart/01-trainingjob-v1.yaml"), settings)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == built["project"].ref
    store = tmp_path / "claim"
    store.mkdir(mode=0o777)
    store.chmod(0o777)  # fsGroup makes the claim writable in a Pod
    termination = tmp_path / "termination-log"
    termination.write_text("")
    termination.chmod(0o666)
    user = pod["securityContext"]["runAsUser"]
    assert user == RUN_AS
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # buildah's chroot isolation cannot mount over /dev, where the kubelet mounts the file.
    args = [a.replace(TERMINATION_MESSAGE_PATH, "/run/termination-log") for a in container["args"]]
    assert args != container["args"]
    start = time.monotonic()
    done = bah.run(
        project,
        *container["command"],
        *args,
        user=f"{user}:{user}",
        env=env,
        volumes=[
            (store, f"{settings.pvc_root}/{settings.model_store_claim}"),
            (termination, "/run/termination-log"),
        ],
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    message = json.loads(termination.read_text())
    assert message["metrics"]["accuracy"] >= 0.9, message
    assert any(p.is_file() for p in store.rglob("*")), "the model is on the claim"
    assert time.monotonic() - start < 120


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@node
@build_timeout
def test_router_image_runs_the_operators_nginx_config(
    bah: Buildah, built: dict[str, Image], tmp_path: Path
) -> None:
    config = bah.inspect(built["router"].ref)
    assert config["User"] == "101:101"
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Cmd"] == ["nginx", "-g", "daemon off;"]

    mdep = yaml.safe_load((EXAMPLES / "quickstart/03-modeldeployment.yaml").read_text())
    name, namespace = mdep["metadata"]["name"], "default"
    objects = router_objects(
        name, namespace, Split(canary=True, canary_weight=20), RouterOptions(built["router"].ref)
    )
    conf_map, deployment = objects[0], objects[1]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == built["router"].ref
    assert container["ports"][0]["containerPort"] == 8080
    (mount,) = (m for m in container["volumeMounts"] if m["name"] == "config")
    conf = tmp_path / "nginx.conf"
    conf.write_text(conf_map["data"]["nginx.conf"])
    user = pod["securityContext"]["runAsUser"]
    # The router token's Secret, as the kubelet mounts it: the snippet the config includes.
    (proof,) = (m for m in container["volumeMounts"] if m["name"] == "proof")
    snippets = tmp_path / "proof"
    snippets.mkdir()
    (snippets / SNIPPET_KEY).write_text(snippet("t" * 32))
    snippets.chmod(0o755)
    (snippets / SNIPPET_KEY).chmod(0o644)
    volumes = [(conf, mount["mountPath"]), (snippets, proof["mountPath"])]
    # nginx resolves the upstreams' Service names when it loads the configuration.
    services = {
        f"{name}-{v}.{namespace}.svc.cluster.local": "127.0.0.1" for v in ("stable", "canary")
    }
    with bah.container(built["router"].ref, hosts=services) as router:
        assert ok(bah.run(router, "sh", "-c", "find / -xdev -type f -perm /6000; true")) == ""
        # runc, as in a Pod: nginx reopens its stderr (error_log /dev/stderr) as that user.
        run_as = {"user": f"{user}:{user}", "volumes": volumes, "isolation": "oci"}
        ok(bah.run(router, "nginx", "-t", **run_as))
        # preStop runs `sleep 5` in the container.
        ok(bah.run(router, *container["lifecycle"]["preStop"]["exec"]["command"][:1], "0"))
        if not free(8080):
            pytest.skip("port 8080 is taken on this machine: not starting the router")
        check_serves(bah.run_command(router, *config["Cmd"], **run_as))


def check_serves(command: list[str]) -> None:
    """Starts the router (as its Pod would: the image's command, non-root) and asks it for
    its health path until it answers."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_healthy(process)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        output.seek(0)
        log = output.read().decode()
    assert "[emerg]" not in log, log
    assert "[alert]" not in log, log


def wait_healthy(process: subprocess.Popen[bytes]) -> None:
    url = f"http://127.0.0.1:8080{HEALTH_PATH}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                assert response.headers[VARIANT_HEADER] in ("stable", "canary")
                return
        except OSError:
            assert process.poll() is None, "the router exited"
            assert time.monotonic() < deadline, "the router did not answer"
            time.sleep(0.2)


@node
@build_timeout
def test_pause_image(bah: Buildah, built: dict[str, Image]) -> None:
    config = bah.inspect(built["pause"].ref)
    assert config["User"] == "65535:65535"
    assert config["Entrypoint"] == ["/pause"]
    with bah.container(built["pause"].ref) as name:
        assert ok(bah.run(name, "/pause", "-v")).startswith("pause.c v3.10")
    assert built["pause"].archive.stat().st_size < 2_000_000
