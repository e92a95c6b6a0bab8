"""Training locally: `mlops train` as a subprocess, progress streamed, the result read back."""

from __future__ import annotations

import time
from collections.abc import Callable

from mlops_operator.api import TrainingJob
from mlops_operator.api.workload import TrainingResult
from mlops_operator.local.home import Home
from mlops_operator.local.processes import Child, mlops_command, start, stop


def command(job: TrainingJob, home: Home) -> list[str]:
    """The same `mlops train` a training Pod runs, with a local store and result file."""
    name = job.metadata.name
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
        str(home.run / f"{name}.result.json"),
    )


def train(job: TrainingJob, home: Home, progress: Callable[[str], None]) -> TrainingResult:
    """Run the training to its end; ``progress`` gets each line the trainer prints."""
    name = job.metadata.name
    result_file = home.run / f"{name}.result.json"
    result_file.unlink(missing_ok=True)
    log = home.logs / f"train-{name}.log"
    log.unlink(missing_ok=True)
    child = start(f"train-{name}", command(job, home), log)
    try:
        exit_code = _follow(child, progress)
    finally:
        stop(child)
    if result_file.exists():
        return TrainingResult.model_validate_json(result_file.read_text())
    return TrainingResult(
        phase="Failed",
        reason="TrainingFailed",
        exit_code=exit_code,
        message=f"mlops train exited with {exit_code} and wrote no result; see {log}",
        name=name,
    )


def _follow(child: Child, progress: Callable[[str], None]) -> int:
    """Pass the child's output lines on as they come; its exit code at the end."""
    with child.log.open() as stream:
        while child.alive():
            line = stream.readline()
            if line:
                progress(line.rstrip())
            else:
                time.sleep(0.05)
        for line in stream:
            progress(line.rstrip())
    return child.process.wait()
