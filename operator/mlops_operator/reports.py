"""Finding a run's HTML report (``mlops report``): by URI, artifact directory or name."""

from __future__ import annotations

import tempfile
from pathlib import Path

from model_server import store

REPORT_FILE = "report.html"


class ReportNotFound(Exception):
    """No report where the target points."""


def _local(uri: str) -> Path:
    """A local path for ``uri``: pvc:// and file:// as they are, s3:// downloaded."""
    path = store.local_path(uri)
    if path is not None:
        return Path(path)
    fs, remote = store.filesystem(uri)
    name = REPORT_FILE if remote.endswith(REPORT_FILE) else f"{remote.rstrip('/')}/{REPORT_FILE}"
    local = Path(tempfile.mkdtemp(prefix="mlops-report-")) / REPORT_FILE
    try:
        fs.get_file(name, str(local))
    except (FileNotFoundError, OSError) as error:
        raise ReportNotFound(f"{uri}: no {REPORT_FILE} ({error})") from None
    return local


def newest(models: Path, namespace: str, name: str) -> Path | None:
    """The newest run's report of a TrainingJob in a local model store."""
    runs = sorted(
        (p for p in (models / namespace / name).glob(f"*/{REPORT_FILE}") if p.is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    return runs[-1] if runs else None


def locate(target: str, namespace: str, models: Path) -> Path:
    looks_like_uri = "://" in target or "/" in target
    if looks_like_uri:
        path = _local(target)
        if path.is_dir():
            path = path / REPORT_FILE
        if not path.is_file():
            raise ReportNotFound(f"{target}: no {REPORT_FILE} there")
        return path
    found = newest(models, namespace, target)
    if found is None:
        raise ReportNotFound(
            f"no report of TrainingJob {namespace}/{target} in {models} (the local runner's "
            "store); in a cluster pass its status.report, e.g. mlops report "
            f"$(kubectl get tj {target} -o jsonpath='{{.status.report}}')"
        )
    return found
