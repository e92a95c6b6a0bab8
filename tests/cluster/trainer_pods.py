"""Playing the kubelet for a training Pod on kwok's simulated node: a real `mlops train` on
this machine with the Pod's own environment, against a claim's directory, and the Pod ended
with the process's exit code and termination message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from .harness import Cluster
from .operator_runner import OperatorProcess, install_crds, install_rbac

INDEX = "batch.kubernetes.io/job-completion-index"


@contextmanager
def operator_for_played_pods(cluster: Cluster) -> Iterator[OperatorProcess]:
    """The operator, on the simulated cluster only: these tests play the kubelet themselves."""
    if not cluster.simulated:
        pytest.skip("plays the kubelet: only on the simulated cluster")
    install_crds(cluster)
    runner = OperatorProcess(install_rbac(cluster), cluster.workdir)
    runner.start()
    yield runner
    runner.stop()


class Container:
    """The trainer container of one Pod, run here with the Pod's environment (its literal
    values; ``extra`` stands for what the kubelet would take from Secrets)."""

    def __init__(
        self,
        pod: client.V1Pod,
        pvc_root: Path,
        scratch: Path,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.pod = pod
        self.result = scratch / f"{pod.metadata.name}.json"
        self.log = scratch / f"{pod.metadata.name}.log"
        env = {e.name: e.value for e in pod.spec.containers[0].env if e.value is not None}
        env.update(
            MLOPS_PVC_ROOT=str(pvc_root),
            HOME=str(scratch),
            TMPDIR=str(scratch),
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            PATH=os.environ["PATH"],
            **(extra or {}),
        )
        index = (pod.metadata.annotations or {}).get(INDEX)
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = index
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlops_operator",
                    "train",
                    "--termination-log",
                    str(self.result),
                    "--log-format",
                    "json",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def trials_logged(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [line for line in lines if "trial" in line]

    def finish(self, cluster: Cluster) -> int:
        """Wait for the process and end the Pod with its exit code and result."""
        code = self.process.wait(timeout=600)
        message = self.result.read_text() if self.result.exists() else ""
        cluster.set_pod_terminated(self.pod, code, message)
        return code
