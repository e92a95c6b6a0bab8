"""Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback.

The API server listens on `address`: 127.0.0.1, or the real node's bridge address when a
session has real-node tests (tests/node/), so that Pods reach it through the `kubernetes`
Service.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .pki import Pair, Pki, create_pki
from .processes import Process, free_port, wait_until

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.1/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_SELECTOR = "kwok.x-k8s.io/node=fake"
AUTO_COMPLETE_LABEL = "kwok.mlops.dev/auto-complete"
ADMIN = ("mlops-test-admin", ("system:masters",))
START_TIMEOUT = 90.0
RESTART_GRACE = 10.0
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # The cluster's own controllers (kube-controller-manager acts as kube-system's accounts).
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        # Every other ServiceAccount: the operator, the chart's accounts, the escalation tests.
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


@dataclass
class ControlPlane:
    bin_dir: Path
    assets: Path
    root: Path
    processes: list[Process] = field(default_factory=list)
    apiserver_port: int = 0
    pki: Pki | None = None
    address: str = "127.0.0.1"
    _ready: dict[str, Callable[[Process], None]] = field(default_factory=dict)
    restarts: list[tuple[float, float]] = field(default_factory=list)
    """(from, until) epoch seconds around each restart: a freshly started API server refuses
    requests (403) until its RBAC caches are filled, which is no missing right."""

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.apiserver_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """One JSON event per line: every request of a ServiceAccount outside kube-system."""
        return self.root / "audit.log"

    def start(self) -> None:
        self.pki = create_pki(self.root / "pki", SERVICE_IP, (self.address,))
        try:
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._start_controllers()
            self._start_kwok()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        assert self.pki is not None
        path = self.root / f"{user.replace(':', '-')}.kubeconfig"
        write_kubeconfig(path, self.url, self.pki.ca.cert, self.pki.client(user, groups))
        return path

    def restart(self, name: str, down: float = 0.0) -> None:
        """Stops one component (``etcd``, ``kube-apiserver``, ...), waits ``down`` seconds and
        starts it again with the same arguments; returns once it answers again."""
        (proc,) = (p for p in self.processes if p.name == name)
        began = time.time()
        proc.stop()
        time.sleep(down)
        fresh = Process(name, proc.argv, self.root, append=True)
        self.processes[self.processes.index(proc)] = fresh
        self._ready[name](fresh)
        self.restarts.append((began, time.time() + RESTART_GRACE))

    def _spawn(self, name: str, *argv: str | Path) -> Process:
        proc = Process(name, [self.bin_dir / name, *argv], self.root)
        self.processes.append(proc)
        return proc

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        proc = self._spawn(
            "etcd",
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        )

        def ready(proc: Process) -> None:
            wait_until("etcd", lambda: _get_json(f"{url}/health")["health"] == "true", 30, [proc])

        self._ready["etcd"] = ready
        ready(proc)
        return url

    def _start_apiserver(self, etcd_url: str) -> None:
        pki = self.pki
        assert pki is not None
        self.apiserver_port = free_port()
        # How the API server authenticates to kubelets (logs, exec): as a cluster admin.
        kubelet_client = pki.client("kube-apiserver-kubelet-client", ("system:masters",))
        proc = self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.root / 'apiserver'}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--profiling=false",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--audit-policy-file={self._audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
        )
        admin = self.kubeconfig(*ADMIN)
        admin.rename(self.admin_kubeconfig)
        ctx = _tls_context(pki.ca.cert, pki.client(*ADMIN))

        def ready(proc: Process) -> None:
            wait_until(
                "kube-apiserver /readyz",
                lambda: _get(f"{self.url}/readyz", ctx) == b"ok",
                START_TIMEOUT,
                [proc],
            )

        self._ready["kube-apiserver"] = ready
        ready(proc)

    def _audit_policy(self) -> Path:
        path = self.root / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(AUDIT_POLICY))
        return path

    def _start_controllers(self) -> None:
        kcm = self._component(
            "kube-controller-manager",
            "system:kube-controller-manager",
            f"--service-account-private-key-file={self._pki.service_account_key}",
            f"--root-ca-file={self._pki.ca.cert}",
            "--use-service-account-credentials=true",
        )
        scheduler = self._component("kube-scheduler", "system:kube-scheduler")
        for name, (proc, port) in {
            "kube-controller-manager": kcm,
            "kube-scheduler": scheduler,
        }.items():
            wait_until(
                f"{name} /healthz",
                lambda port=port: _get(f"https://127.0.0.1:{port}/healthz", _insecure()) == b"ok",
                START_TIMEOUT,
                [proc],
            )

    @property
    def _pki(self) -> Pki:
        assert self.pki is not None
        return self.pki

    def _component(self, name: str, user: str, *extra: str) -> tuple[Process, int]:
        kubeconfig, port = self.kubeconfig(user), free_port()
        proc = self._spawn(
            name,
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.root / name}",
            "--leader-elect=false",
            *extra,
        )
        return proc, port

    def _start_kwok(self) -> None:
        config = self.root / "kwok.yaml"
        config.write_text(kwok_stages(self.assets / "kwok-stages"))
        self._spawn(
            "kwok",
            f"--kubeconfig={self.kubeconfig('kwok', ('system:masters',))}",
            f"--config={config}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_SELECTOR}",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{free_port()}",
        )


def kwok_stages(stage_dir: Path) -> str:
    """kwok's default node and pod stages; pods of Jobs complete only with AUTO_COMPLETE_LABEL."""
    docs = [yaml.safe_load(p.read_text()) for p in sorted(stage_dir.glob("*.yaml"))]
    for doc in docs:
        if doc["metadata"]["name"] == "pod-complete":
            doc["spec"]["selector"]["matchExpressions"].append(
                {
                    "key": f'.metadata.labels["{AUTO_COMPLETE_LABEL}"]',
                    "operator": "In",
                    "values": ["true"],
                }
            )
    return yaml.safe_dump_all(docs, sort_keys=False)


def write_kubeconfig(path: Path, server: str, ca: Path, client: Pair) -> None:
    user = {"client-certificate": str(client.cert), "client-key": str(client.key)}
    cluster = {"server": server, "certificate-authority": str(ca)}
    path.write_text(yaml.safe_dump(kubeconfig_dict(cluster, user)))
    path.chmod(0o600)


def kubeconfig_dict(cluster: dict[str, Any], user: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mlops-test", "cluster": cluster}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "mlops-test", "context": {"cluster": "mlops-test", "user": "user"}}],
        "current-context": "mlops-test",
    }


def _tls_context(ca: Path, client: Pair) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get(url: str, ctx: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
        return bytes(resp.read())


def _get_json(url: str) -> dict[str, object]:
    return dict(json.loads(_get(url)))
