"""The chart, helm and kubectl for the packaging tests.

helm and kubectl are the ones the cluster tests build from Go modules (hack/k8s/build.sh,
through the cluster harness): a fresh machine builds them, nothing is skipped.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.harness import find_binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mlops-operator"
RELEASE = "mlops-operator"
NAMESPACE = "mlops-system"
KUBE_VERSION = "1.34"
"""The Kubernetes version the manifests are validated against (as in the unit tests)."""


@functools.cache
def tool(name: str) -> Path:
    path = find_binaries() / "bin" / name
    if not path.exists():
        raise RuntimeError(f"{name} is not in {path.parent}: hack/k8s/build.sh builds it")
    return path


def helm_env(kubeconfig: Path | None = None) -> dict[str, str]:
    """helm with its own writable homes, and a kubeconfig only when one is given."""
    home = Path(tempfile.gettempdir()) / "mlops-helm-home"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    env["KUBECONFIG"] = str(kubeconfig) if kubeconfig else str(home / "no-kubeconfig")
    return env


def helm(
    *args: str, check: bool = True, kubeconfig: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(tool("helm")), *args],
        check=False,
        capture_output=True,
        text=True,
        env=helm_env(kubeconfig),
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
    return result


def values_file(values: Mapping[str, Any], directory: Path) -> Path:
    path = directory / f"values-{abs(hash(yaml.safe_dump(dict(values))))}.yaml"
    path.write_text(yaml.safe_dump(dict(values)))
    return path


def template(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    extra: Sequence[str] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with these values (a values file, as users write them)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["template", release, str(CHART), f"--namespace={namespace}", *extra]
        if values:
            args.append(f"--values={values_file(values, Path(tmp))}")
        return helm(*args, check=check)


def render(values: Mapping[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The objects `helm template` renders (test hooks included)."""
    docs = yaml.safe_load_all(template(values, **kwargs).stdout)
    return [doc for doc in docs if doc]


def by_kind(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
