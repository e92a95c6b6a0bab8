"""The model store unreachable, full or refusing while a training publishes: the run fails with
the store's reason and exit code, nothing is half-written, and a retry of the same version
succeeds once the store is back. Real filesystems (a tiny tmpfs, a read-only mount) and a real
S3 server (moto) that is down, then up."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.conftest import Run, Trainer
from tests.trainer.test_sources import free_port
from trainer import store_faults
from trainer.errors import PublishError, StoreDeniedError, StoreFullError, StoreUnreachableError

SPEC = {"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}}
FREE_BYTES = 16 * 1024
"""What the full store has left: less than one artifact (model, model.onnx, metadata, report)."""


def mount(target: Path, *options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", ",".join(("size=2m", *options)), "tmpfs", str(target)]
    if (
        os.geteuid() != 0
        or subprocess.run(command, check=False, capture_output=True).returncode != 0
    ):
        pytest.skip("needs root to mount a tmpfs")


@pytest.fixture
def tiny(train: Trainer) -> Iterator[Path]:
    """The trainer's store on a 2 MiB tmpfs."""
    mount(train.store)
    yield train.store
    subprocess.run(["umount", "--lazy", str(train.store)], check=True)


def fill(directory: Path, leave: int) -> Path:
    """A file that leaves ``leave`` bytes free on ``directory``'s filesystem."""
    stats = os.statvfs(directory)
    filler = directory / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))
    return filler


def everything_in(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*"))


def assert_published(run: Run) -> None:
    assert run.code == 0, run.result["message"]
    artifact = run.artifact()
    assert sorted(p.name for p in artifact.iterdir()) == [
        "digest",
        "metadata.json",
        "model.onnx",
        "model.skops",
        "report.html",
    ]
    assert (artifact / "digest").read_text().strip() == run.result["model"]["digest"]


def test_a_full_store_fails_the_run_leaves_nothing_and_a_retry_publishes(
    train: Trainer, tiny: Path
) -> None:
    filler = fill(tiny, FREE_BYTES)
    failed = train(SPEC)
    assert (failed.code, failed.result["reason"]) == (17, "ModelStoreFull")
    message = failed.result["message"]
    assert f"model store file://{tiny} is full" in message
    assert "No space left on device" in message
    assert "model" not in failed.result
    assert everything_in(tiny) == ["filler"], "a half-written version is left"

    filler.unlink()
    assert_published(train(SPEC))  # the same version, as the Job's retry publishes it


def test_a_read_only_store_is_refused_and_says_so(train: Trainer) -> None:
    mount(train.store, "ro")
    try:
        run = train(SPEC)
    finally:
        subprocess.run(["umount", "--lazy", str(train.store)], check=True)
    assert (run.code, run.result["reason"]) == (18, "ModelStoreDenied")
    assert "refused to write" in run.result["message"]
    assert "Read-only file system" in run.result["message"]


def test_what_a_killed_attempt_left_is_removed_by_the_next(train: Trainer) -> None:
    parent = train.store / "team-a" / "job"
    stale = parent / ".tmp-v1-killed"
    stale.mkdir(parents=True)
    (stale / "model.skops").write_bytes(b"half")
    assert_published(train(SPEC))
    assert sorted(p.name for p in parent.iterdir()) == ["v1"]


@pytest.mark.component
def test_an_unreachable_s3_store_fails_the_run_and_a_retry_publishes_once_it_is_back(
    train: Trainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.server import ThreadedMotoServer

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # moto's backend is one per process: another test's bucket may already be there.
    bucket = f"models-{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLOPS_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    down = train(SPEC, store=f"s3://{bucket}")
    assert (down.code, down.result["reason"]) == (16, "ModelStoreUnreachable")
    unreachable = f"model store s3://{bucket} (endpoint {endpoint}) is unreachable"
    assert unreachable in down.result["message"]

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        import s3fs

        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
        fs.mkdir(bucket)
        # What a first attempt cut off mid-upload leaves: files, and no digest.
        fs.pipe(f"{bucket}/team-a/job/v1/model.skops", b"half")
        again = train(SPEC, store=f"s3://{bucket}")
        assert again.code == 0, again.result["message"]
        fs.invalidate_cache()
        names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{bucket}/team-a/job/v1"))
        assert names == ["digest", "metadata.json", "model.onnx", "model.skops", "report.html"]
        assert (
            fs.cat(f"{bucket}/team-a/job/v1/digest").decode().strip()
            == again.result["model"]["digest"]
        )
    finally:
        server.stop()


def _botocore_endpoint_error() -> Exception:
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError(endpoint_url="http://minio:9000/models")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), StoreFullError),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), StoreFullError),
        (
            OSError(errno.EIO, "XMinioStorageFull: Storage backend has reached its limit"),
            StoreFullError,
        ),
        (PermissionError(errno.EACCES, "Permission denied"), StoreDeniedError),
        (OSError(errno.EROFS, "Read-only file system"), StoreDeniedError),
        (OSError(errno.EIO, "InvalidAccessKeyId: The key does not exist"), StoreDeniedError),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), StoreUnreachableError),
        (OSError(errno.ESTALE, "Stale file handle"), StoreUnreachableError),
        (_botocore_endpoint_error(), StoreUnreachableError),
        (RuntimeError("wrapped"), PublishError),
    ],
)
def test_each_store_failure_is_told_apart(error: Exception, kind: type[PublishError]) -> None:
    assert store_faults.kind(error) is kind
    wrapped = RuntimeError("fsspec said no")
    wrapped.__cause__ = error
    assert store_faults.kind(wrapped) is kind
    made = store_faults.publish_error("pvc://models", "pvc://models/ns/job/v1", error)
    assert type(made) is kind
    assert "pvc://models" in made.message
