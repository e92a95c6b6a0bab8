"""Training locally: `mlops train` as a subprocess, progress streamed, the result read back.

A parallel search (``search.parallelism: N``) runs N such processes, one per worker index, on
the same version and so the same study in the local model store; worker 0's output is
streamed and its result (it publishes) read back, as worker 0's Pod is in a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mlops_operator.api import TrainingJob
from mlops_operator.api.workload import TrainingResult
from mlops_operator.local.home import Home
from mlops_operator.local.processes import Child, mlops_command, start, stop
from trainer.publish import new_version


def workers(job: TrainingJob) -> int:
    return job.spec.search.parallelism if job.spec.search else 1


def result_file(job: TrainingJob, home: Home, worker: int = 0) -> Path:
    suffix = f".worker-{worker}" if worker else ""
    return home.run / f"{job.metadata.name}{suffix}.result.json"


def command(job: TrainingJob, home: Home, worker: int = 0, version: str | None = None) -> list[str]:
    """The same `mlops train` a training Pod runs, with a local store and result file."""
    name = job.metadata.name
    extra = ["--worker-index", str(worker), "--version", version] if version else []
    return mlops_command(
        "train",
        "--spec-json",
        job.spec.model_dump_json(by_alias=True, exclude_none=True),
        "--name",
        name,
        "--namespace",
        job.metadata.namespace,
        "--store",
        home.models.as_uri(),
        "--termination-log",
        str(result_file(job, home, worker)),
        *extra,
    )


def train(job: TrainingJob, home: Home, progress: Callable[[str], None]) -> TrainingResult:
    """Run the training to its end; ``progress`` gets each line the trainer prints."""
    name = job.metadata.name
    version = new_version() if workers(job) > 1 else None
    children = []
    try:
        for worker in range(workers(job)):
            result_file(job, home, worker).unlink(missing_ok=True)
            suffix = f"-worker-{worker}" if worker else ""
            log = home.logs / f"train-{name}{suffix}.log"
            log.unlink(missing_ok=True)
            children.append(
                start(f"train-{name}{suffix}", command(job, home, worker, version), log)
            )
        exit_code = _follow(children[0], progress, children[1:])
        for other in children[1:]:
            other.process.wait()
        failed = [c for c in children[1:] if c.process.returncode]
        if failed:
            return TrainingResult(
                phase="Failed",
                reason="TrainingFailed",
                exit_code=int(failed[0].process.returncode or 1),
                message=f"search worker {failed[0].name} exited with "
                f"{failed[0].process.returncode}; see {failed[0].log}",
                name=name,
            )
    finally:
        for child in children:
            stop(child)
    log = children[0].log
    done = result_file(job, home)
    if done.exists():
        return TrainingResult.model_validate_json(done.read_text())
    return TrainingResult(
        phase="Failed",
        reason="TrainingFailed",
        exit_code=exit_code,
        message=f"mlops train exited with {exit_code} and wrote no result; see {log}",
        name=name,
    )


def _follow(child: Child, progress: Callable[[str], None], others: list[Child]) -> int:
    """Pass the child's output lines on as they come; its exit code at the end (it is stopped
    when another search worker fails: locally nothing retries it, so worker 0 would wait)."""
    with child.log.open() as stream:
        while child.alive():
            if any(other.process.poll() not in (None, 0) for other in others):
                stop(child)
                break
            line = stream.readline()
            if line:
                progress(line.rstrip())
            else:
                time.sleep(0.05)
        for line in stream:
            progress(line.rstrip())
    return child.process.wait()
