"""`mlops train` behind the CLI: resolve the request, run it, report the result.

The click command in ``mlops_operator.cli`` only parses flags and calls :func:`main`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from pydantic import ValidationError

from mlops_operator.api.common import STORE_URI_FORMS, STORE_URI_PATTERN
from mlops_operator.api.workload import (
    NAME_ENV,
    SPEC_ENV,
    STORE_ENV,
    TERMINATION_LOG,
    ExitCode,
    TrainingResult,
)
from trainer.errors import InvalidSpecError, InvalidStoreError, TerminatedError, TrainerError
from trainer.progress import Progress

VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _describe(error: ValidationError) -> str:
    from mlops_operator.manifests import describe

    return describe(error)


def _from_manifest(manifest: Path) -> tuple[Any, str, str]:
    """The spec, name and namespace of the one TrainingJob in a manifest file."""
    from mlops_operator.api.trainingjob import TrainingJob
    from mlops_operator.manifests import ManifestError, documents, parse

    if not manifest.exists():
        raise InvalidSpecError(f"{manifest}: no such file")
    try:
        jobs = [parse(doc, str(manifest)) for doc in documents(manifest)]
    except ManifestError as error:
        raise InvalidSpecError(str(error)) from None
    trainingjobs = [job for job in jobs if isinstance(job, TrainingJob)]
    if len(trainingjobs) != 1:
        raise InvalidSpecError(
            f"{manifest}: expected exactly one TrainingJob, found {len(trainingjobs)}"
        )
    job = trainingjobs[0]
    return job.spec, job.metadata.name, job.metadata.namespace


def _from_json(spec_json: str) -> Any:
    """The TrainingJobSpec in a JSON document (a spec, or a whole TrainingJob)."""
    from mlops_operator.api.trainingjob import TrainingJobSpec

    try:
        document = json.loads(spec_json)
    except json.JSONDecodeError as error:
        raise InvalidSpecError(f"spec JSON: not valid JSON ({error})") from None
    if isinstance(document, dict) and document.get("kind") == "TrainingJob":
        document = document.get("spec")
    try:
        return TrainingJobSpec.model_validate(document)
    except ValidationError as error:
        raise InvalidSpecError(f"spec: {_describe(error)}") from None


def resolve_request(
    manifest: Path | None,
    *,
    spec_json: str | None,
    name: str | None,
    namespace: str | None,
    store: str | None,
    version: str | None,
    worker: int = 0,
) -> Any:
    """The RunRequest from the flags; InvalidSpecError names what is missing or wrong."""
    from trainer.publish import new_version
    from trainer.run import RunRequest

    if manifest is not None and spec_json:
        raise InvalidSpecError("give either a manifest (-f) or a spec (--spec-json), not both")
    if manifest is not None:
        spec, manifest_name, manifest_namespace = _from_manifest(manifest)
        name, namespace = name or manifest_name, namespace or manifest_namespace
    elif spec_json:
        spec = _from_json(spec_json)
        if not name:
            raise InvalidSpecError(f"a spec given as JSON needs --name (or ${NAME_ENV})")
    else:
        raise InvalidSpecError(
            f"nothing to train: give a manifest (-f) or a spec (--spec-json or ${SPEC_ENV})"
        )
    store = store or spec.output.uri
    if not store:
        raise InvalidSpecError(
            f"no model store: give --store (or ${STORE_ENV}) or set spec.output.uri"
        )
    if not (store.startswith("/") or re.fullmatch(STORE_URI_PATTERN, store)):
        raise InvalidStoreError(
            f"model store {store!r} (--store, ${STORE_ENV} or spec.output.uri): use "
            f"{STORE_URI_FORMS}, with a claim or bucket name"
        )
    version = version or new_version()
    if not VERSION_PATTERN.fullmatch(version):
        raise InvalidSpecError(
            f"--version {version!r}: use letters, digits, '.', '_' and '-' (at most 63, "
            "starting with a letter or digit)"
        )
    workers = spec.search.parallelism if spec.search else 1
    if not 0 <= worker < workers:
        raise InvalidSpecError(
            f"--worker-index {worker}: the search has {workers} worker(s), 0 to {workers - 1} "
            "(search.parallelism)"
        )
    return RunRequest(
        spec=spec,
        name=name,
        namespace=namespace or "default",
        store=store,
        version=version,
        worker=worker,
    )


def write_termination_message(result: TrainingResult, path: str, explicit: bool) -> str | None:
    """Write the bounded JSON; the default path only when it exists (the kubelet creates it)."""
    if not explicit and not os.path.exists(path):
        return None
    try:
        Path(path).write_text(result.to_termination_message())
    except OSError as error:
        return f"cannot write the termination message to {path}: {error.strerror or error}"
    return None


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise TerminatedError(
        f"terminated by {signal.Signals(signum).name} (activeDeadlineSeconds or the Pod "
        "deleted?) before the model was published"
    )


@contextlib.contextmanager
def _sigterm_reports() -> Iterator[None]:
    """While training, SIGTERM becomes a TerminatedError, so a result is still written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def summary(result: TrainingResult) -> str:
    lines = [f"{result.phase}: {result.message}"]
    if result.metrics:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if v is not None)
        lines.append(f"  metrics: {shown}")
    if result.best_params:
        lines.append(f"  best params: {result.best_params}")
    if result.importance:
        top = list(result.importance.items())[:5]
        lines.append("  top features: " + ", ".join(f"{k} ({v:.3f})" for k, v in top))
    for failure in result.gate_failures:
        lines.append(f"  gate: {failure.describe()}")
    if result.model:
        lines.append(f"  model: {result.model.uri}")
        lines.append(f"  digest: {result.model.digest}")
    lines.append(f"  exit code: {result.exit_code} ({result.reason})")
    return "\n".join(lines)


def main(
    manifest: Path | None = None,
    *,
    spec_json: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    store: str | None = None,
    version: str | None = None,
    termination_log: str | None = None,
    log_format: str = "text",
    out: TextIO | None = None,
    worker: int = 0,
) -> int:
    """Run `mlops train`; the exit code."""
    out = out or sys.stdout
    progress = Progress(log_format)
    try:
        request = resolve_request(
            manifest,
            spec_json=spec_json,
            name=name,
            namespace=namespace,
            store=store,
            version=version,
            worker=worker,
        )
    except TrainerError as error:
        result = TrainingResult(
            phase="Failed",
            reason=error.reason,
            exit_code=int(error.code),
            message=error.message,
            name=name,
            namespace=namespace,
        )
    else:
        from trainer.run import train

        try:
            with _sigterm_reports():
                result = train(request, progress)
        except Exception as error:  # a bug, not a user error: still one line and a result
            result = TrainingResult(
                phase="Failed",
                reason="InternalError",
                exit_code=int(ExitCode.INTERNAL),
                message=f"internal error: {type(error).__name__}: {error}",
                name=request.name,
                namespace=request.namespace,
            )
    if result.phase == "Failed":
        progress(result.message, level="error", reason=result.reason)
    problem = write_termination_message(
        result, termination_log or TERMINATION_LOG, termination_log is not None
    )
    if problem:
        progress(problem, level="warning")
    if log_format == "json":
        print(json.dumps({"result": json.loads(result.dump())}), file=out, flush=True)
    else:
        print(summary(result), file=out, flush=True)
    return result.exit_code


__all__ = ["main", "resolve_request", "summary", "write_termination_message"]
