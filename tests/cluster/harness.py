"""What cluster tests get: admin and ServiceAccount clients, kubectl, a kubelet stand-in."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config

from .controlplane import KWOK_NODE_SELECTOR, ControlPlane, kubeconfig_dict
from .pki import Pki

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "k8s" / "build.sh"
FAKE_NODE = "kwok-node-0"
T = TypeVar("T")
CRD_NAMES = ("trainingjobs.mlops.dev", "modeldeployments.mlops.dev")


@dataclass
class Cluster:
    """A running cluster: ours (simulated, `simulated=True`) or an existing one."""

    kubeconfig: Path
    api: client.ApiClient
    simulated: bool
    workdir: Path
    cache: Path | None
    pki: Pki | None = None  # the simulated cluster's CA and signer
    plane: ControlPlane | None = None  # the simulated cluster's processes (restartable)

    def audit_refusals(
        self, user: str, since: float = 0.0, agents: tuple[str, ...] = ("",)
    ) -> list[str] | None:
        """What the API server answered ``user`` with 403 since ``since`` (epoch seconds), from
        its audit log: RBAC and admission refusals alike, also those a client retries quietly;
        only requests whose user agent starts with one of ``agents``. None when there is no
        audit log to read (an existing cluster)."""
        if self.plane is None or not self.plane.audit_log.exists():
            return None
        out = []
        for line in self.plane.audit_log.read_text(errors="replace").splitlines():
            event = json.loads(line)
            if event.get("user", {}).get("username") != user:
                continue
            answer = event.get("responseStatus") or {}
            if answer.get("code") != 403 or "because it is being terminated" in str(
                answer.get("message")
            ):
                continue  # a namespace being deleted refuses everything: no right is missing
            if not str(event.get("userAgent", "")).startswith(agents):
                continue
            when = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"])
            restarting = any(a <= when.timestamp() <= b for a, b in self.plane.restarts)
            if when.timestamp() >= since and not restarting:
                out.append(f"{event['verb']} {event['requestURI']}")
        return out

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl as the admin; raises with kubectl's stderr when `check` and it fails."""
        argv = [str(self.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=input, check=False, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def adopt_crds(self, release: str, namespace: str) -> None:
        """Lets a Helm release take over the CRDs earlier tests applied with kubectl (the
        labels and annotations docs/install.md names)."""
        ext = client.ApiextensionsV1Api(self.api)
        for name in CRD_NAMES:
            try:
                ext.read_custom_resource_definition(name)
            except client.ApiException as error:
                if error.status == 404:
                    continue
                raise
            self.kubectl("label", "crd", name, "app.kubernetes.io/managed-by=Helm", "--overwrite")
            self.kubectl(
                "annotate",
                "crd",
                name,
                f"meta.helm.sh/release-name={release}",
                f"meta.helm.sh/release-namespace={namespace}",
                "--overwrite",
            )

    def apply(self, *manifests: Mapping[str, Any], namespace: str | None = None) -> str:
        """Applies manifests with kubectl (server-side) as the admin; returns kubectl's output."""
        args = ["apply", "--server-side", "--field-manager=tests", "-f", "-"]
        if namespace:
            args.append(f"--namespace={namespace}")
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        return self.kubectl(*args, input=body).stdout

    def apply_files(self, *paths: Path, namespace: str | None = None) -> str:
        """Applies YAML files (e.g. `hack/k8s/build.sh crds`) server-side, so large CRDs fit."""
        args = ["apply", "--server-side", "--field-manager=tests"]
        args += [f"--filename={p}" for p in paths]
        if namespace:
            args.append(f"--namespace={namespace}")
        return self.kubectl(*args).stdout

    def binary(self, name: str) -> Path:
        """A built tool (kubectl, helm, ...) from the cache, else from PATH."""
        if self.cache is not None and (self.cache / "bin" / name).exists():
            return self.cache / "bin" / name
        found = shutil.which(name)
        if found is None:
            raise RuntimeError(f"{name} not found: run hack/k8s/build.sh or put it on PATH")
        return Path(found)

    def server_version(self) -> str:
        return str(client.VersionApi(self.api).get_code().git_version)

    def service_account_token(
        self, namespace: str, name: str, *, create: bool = True, seconds: int = 3600
    ) -> str:
        """A bound token of the ServiceAccount (TokenRequest), creating the account if asked."""
        if create:
            ensure_service_account(self.core, namespace, name)
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
        )
        token = self.core.create_namespaced_service_account_token(name, namespace, request)
        return str(token.status.token)

    def service_account_kubeconfig(self, namespace: str, name: str, *, create: bool = True) -> Path:
        """A kubeconfig file that authenticates as the ServiceAccount (for kopf, kubectl, helm)."""
        token = self.service_account_token(namespace, name, create=create)
        doc = kubeconfig_dict(current_cluster(self.kubeconfig), {"token": token})
        path = self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def service_account_client(
        self, namespace: str, name: str, *, create: bool = True
    ) -> client.ApiClient:
        """An API client that acts as the ServiceAccount, so RBAC applies to it."""
        path = self.service_account_kubeconfig(namespace, name, create=create)
        return config.new_client_from_config(config_file=str(path))

    def set_pod_terminated(
        self,
        pod: client.V1Pod | Mapping[str, Any],
        exit_code: int,
        message: str = "",
        reason: str | None = None,
        *,
        container: str | None = None,
        timeout: float = 60,
    ) -> client.V1Pod:
        """Plays the kubelet: see `set_pod_terminated`."""
        return set_pod_terminated(
            self.core, pod, exit_code, message, reason, container=container, timeout=timeout
        )


def set_pod_terminated(
    core: client.CoreV1Api,
    pod: client.V1Pod | Mapping[str, Any],
    exit_code: int,
    message: str = "",
    reason: str | None = None,
    *,
    container: str | None = None,
    timeout: float = 60,
) -> client.V1Pod:
    """Ends a pod as the kubelet would when its containers exit.

    Waits until the pod runs (so kwok is done with it), then writes a terminated state into
    every container status: `container` (default: the first one) gets `exit_code`, `reason`
    (default "Completed" or "Error") and `message` (what the kubelet copies from the
    termination message file); the others exit 0. The phase becomes Succeeded or Failed.
    """
    namespace, name = _pod_key(pod)
    running = wait_for(
        f"pod {namespace}/{name} running",
        lambda: _running_pod(core, namespace, name),
        timeout,
    )
    patch = terminated_status_patch(running, exit_code, message, reason, container)
    return core.patch_namespaced_pod_status(
        name, namespace, patch, _content_type="application/strategic-merge-patch+json"
    )


def terminated_status_patch(
    pod: client.V1Pod, exit_code: int, message: str, reason: str | None, container: str | None
) -> dict[str, Any]:
    now = _now()
    target = container or pod.spec.containers[0].name
    started = {s.name: s.state.running.started_at for s in pod.status.container_statuses or []}
    statuses = []
    for c in pod.spec.containers:
        code = exit_code if c.name == target else 0
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": _rfc3339(started.get(c.name)) or now,
            "finishedAt": now,
        }
        if c.name == target and message:
            terminated["message"] = message
        statuses.append(
            {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        )
    ready = {"status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
    return {
        "status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "conditions": [{"type": "Ready", **ready}, {"type": "ContainersReady", **ready}],
            "containerStatuses": statuses,
        }
    }


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60) -> T:
    """Polls `check` until it returns something truthy and returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def crd_established(api: client.ApiClient, name: str) -> bool:
    """Whether the CRD's names are accepted and its API is served."""
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    status = {c.type: c.status for c in crd.status.conditions or []}
    return status.get("Established") == "True" and status.get("NamesAccepted") == "True"


def current_cluster(kubeconfig: Path) -> dict[str, Any]:
    """The `cluster` entry (server, CA) of a kubeconfig's current context."""
    doc = yaml.safe_load(kubeconfig.read_text())
    context = next(c["context"] for c in doc["contexts"] if c["name"] == doc["current-context"])
    return dict(next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"]))


def ensure_service_account(core: client.CoreV1Api, namespace: str, name: str) -> None:
    body = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    try:
        core.create_namespaced_service_account(namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def cluster_role(
    name: str, rules: list[dict[str, Any]], subject: dict[str, str]
) -> list[dict[str, Any]]:
    """A ClusterRole with `rules` and its binding to `subject`, both named `name`."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [subject],
    }
    return [role, binding]


def user_subject(user: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}


def fake_node(name: str = FAKE_NODE) -> dict[str, Any]:
    """A Node that kwok manages: Ready, with room for many pods."""
    key, value = KWOK_NODE_SELECTOR.split("=")
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


def node_ready(core: client.CoreV1Api, name: str) -> bool:
    node = core.read_node(name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def find_binaries() -> Path:
    """Builds the binaries when missing (hack/k8s/build.sh) and returns the cache dir."""
    if custom := os.environ.get("MLOPS_K8S_CACHE"):
        cache = Path(custom)
        if (cache / "bin" / "kube-apiserver").exists():
            return cache
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _running_pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    pod = core.read_namespaced_pod(name, namespace)
    return pod if pod.status.phase == "Running" else None


def _pod_key(pod: client.V1Pod | Mapping[str, Any]) -> tuple[str, str]:
    if isinstance(pod, client.V1Pod):
        return pod.metadata.namespace, pod.metadata.name
    return pod["metadata"]["namespace"], pod["metadata"]["name"]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(value: datetime.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
