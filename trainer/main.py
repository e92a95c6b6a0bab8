"""`mlops train` behind the CLI: resolve the request, run it, report the result.

The click command in ``mlops_operator.cli`` only parses flags and calls :func:`main`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from trainer.errors import ExitCode, InvalidSpecError, TrainerError
from trainer.progress import Progress
from trainer.result import TrainingResult

SPEC_ENV = "MLOPS_TRAININGJOB_SPEC"
NAME_ENV = "MLOPS_TRAININGJOB_NAME"
NAMESPACE_ENV = "MLOPS_TRAININGJOB_NAMESPACE"
STORE_ENV = "MLOPS_MODEL_STORE"
VERSION_ENV = "MLOPS_MODEL_VERSION"
TERMINATION_LOG_ENV = "MLOPS_TERMINATION_LOG"
LOG_FORMAT_ENV = "MLOPS_LOG_FORMAT"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def _describe(error: ValidationError) -> str:
    from mlops_operator.manifests import describe

    return describe(error)


def resolve_request(
    manifest: Path | None,
    spec_json: str | None,
    name: str | None,
    namespace: str | None,
    store: str | None,
    version: str | None,
) -> Any:
    """The RunRequest from the flags; InvalidSpecError names what is missing or wrong."""
    from mlops_operator.api.trainingjob import TrainingJob, TrainingJobSpec
    from mlops_operator.manifests import ManifestError, documents, parse
    from trainer.publish import new_version
    from trainer.run import RunRequest

    if manifest is not None and spec_json:
        raise InvalidSpecError("give either a manifest (-f) or a spec (--spec-json), not both")
    if manifest is not None:
        try:
            docs = list(documents(manifest)) if manifest.exists() else None
            if docs is None:
                raise InvalidSpecError(f"{manifest}: no such file")
            jobs = [parse(doc, str(manifest)) for doc in docs]
        except ManifestError as error:
            raise InvalidSpecError(str(error)) from None
        trainingjobs = [job for job in jobs if isinstance(job, TrainingJob)]
        if len(trainingjobs) != 1:
            raise InvalidSpecError(
                f"{manifest}: expected exactly one TrainingJob, found {len(trainingjobs)}"
            )
        job = trainingjobs[0]
        spec = job.spec
        name = name or job.metadata.name
        namespace = namespace or job.metadata.namespace
    elif spec_json:
        try:
            document = json.loads(spec_json)
        except json.JSONDecodeError as error:
            raise InvalidSpecError(f"spec JSON: not valid JSON ({error})") from None
        if isinstance(document, dict) and document.get("kind") == "TrainingJob":
            document = document.get("spec")
        try:
            spec = TrainingJobSpec.model_validate(document)
        except ValidationError as error:
            raise InvalidSpecError(f"spec: {_describe(error)}") from None
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
    version = version or new_version()
    if not version or "/" in version or version.startswith("."):
        raise InvalidSpecError(f"--version {version!r}: not a valid version name")
    return RunRequest(
        spec=spec, name=name, namespace=namespace or "default", store=store, version=version
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


def summary(result: TrainingResult) -> str:
    lines = [f"{result.phase}: {result.message}"]
    if result.metrics:
        shown = ", ".join(
            f"{k}={v:.4g}" for k, v in result.metrics.items() if v is not None
        )
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
    spec_json: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    store: str | None = None,
    version: str | None = None,
    termination_log: str | None = None,
    log_format: str = "text",
    out: TextIO | None = None,
) -> int:
    """Run `mlops train`; the exit code."""
    out = out or sys.stdout
    progress = Progress(log_format)
    try:
        request = resolve_request(manifest, spec_json, name, namespace, store, version)
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
        result, termination_log or DEFAULT_TERMINATION_LOG, termination_log is not None
    )
    if problem:
        progress(problem, level="warning")
    if log_format == "json":
        print(json.dumps({"result": json.loads(result.dump())}), file=out, flush=True)
    else:
        print(summary(result), file=out, flush=True)
    return result.exit_code


__all__ = ["main", "resolve_request", "summary", "write_termination_message"]
