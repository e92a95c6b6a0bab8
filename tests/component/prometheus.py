"""A real Prometheus server on loopback, scraping the given jobs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .backends import free_port
from .servers import request


@contextmanager
def running_prometheus(root: Path, jobs: list[dict[str, Any]], scrape: float) -> Iterator[str]:
    """Prometheus with ``jobs`` as its scrape_configs, every ``scrape`` seconds; its URL once
    it is ready."""
    port = free_port()
    config = {
        "global": {"scrape_interval": f"{scrape:g}s", "evaluation_interval": "1s"},
        "scrape_configs": jobs,
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/-/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (root / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def job(name: str, ports: list[int], namespace: str) -> dict[str, Any]:
    """A scrape job of model servers on loopback, labelled as the namespace they serve."""
    return {
        "job_name": name,
        "static_configs": [
            {"targets": [f"127.0.0.1:{p}" for p in ports], "labels": {"namespace": namespace}}
        ],
    }
