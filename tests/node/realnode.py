"""One real node joined to the test control plane: containerd 2 + runc, the kubelet, a bridge
CNI network, kube-proxy (iptables), CoreDNS, static local volumes, and kube-router as the
NetworkPolicy enforcer (its firewall only: the bridge plugin enforces no NetworkPolicy).

Everything lives in `root` (the pytest tmp dir): containerd's root, state and socket, the
kubelet's root, the CNI config, the volumes, every log. tests/node/host.py owns the host
side (bridge, cgroup, cleanup).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.cluster.controlplane import SERVICE_CIDR, ControlPlane, write_kubeconfig
from tests.cluster.harness import (
    REPO,
    Cluster,
    cluster_role,
    find_binaries,
    node_ready,
    user_subject,
    wait_for,
)
from tests.cluster.pki import Pair, Pki
from tests.cluster.processes import Process, free_port, wait_until

from .host import (
    BRIDGE,
    CGROUP,
    CLUSTER_CIDR,
    CLUSTER_DNS,
    CNI_NETWORK,
    NODE_ADDRESS,
    NODE_NAME,
    POD_SUBNET,
    NodeHost,
    kill_cgroup_processes,
    unmount_under,
)

NODE_BUILD = REPO / "hack" / "node" / "build.sh"
IMAGES_BUILD = REPO / "hack" / "images" / "build.sh"
STORAGE_CLASS = "mlops-local"
VOLUMES = 8
SIMULATED_TAINT = {"key": "mlops.dev/simulated", "value": "true", "effect": "NoSchedule"}
KUBE_ROUTER_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods", "namespaces", "nodes", "services", "endpoints"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["list", "watch"],
    },
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["list", "watch"],
    },
]
COREDNS_RULES = [
    {
        "apiGroups": [""],
        "resources": ["endpoints", "services", "pods", "namespaces"],
        "verbs": ["list", "watch"],
    },
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["list", "watch"],
    },
]


def node_binaries() -> Path:
    """Builds the node's binaries when missing (hack/node/build.sh); returns its cache dir."""
    if custom := os.environ.get("MLOPS_NODE_CACHE"):
        cache = Path(custom)
        if (cache / "bin" / "containerd").exists():
            return cache
    result = subprocess.run(["bash", str(NODE_BUILD)], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{NODE_BUILD} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class RealNode:
    cluster: Cluster
    pki: Pki
    host: NodeHost
    k8s_bin: Path
    cache: Path
    root: Path
    processes: list[Process] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # the start, cumulative
    e2e_timings: dict[str, float] = field(default_factory=dict)  # hack/quickstart.sh steps

    @property
    def socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def bin(self) -> Path:
        return self.cache / "bin"

    def start(self) -> None:
        started = time.monotonic()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._start_containerd()
            self._mark("containerd", started)
            self.import_images()
            self._mark("images", started)
            self._start_kubelet()
            self._mark("kubelet Ready", started)
            self._start_kube_proxy()
            self._start_coredns()
            self._mark("kube-proxy, CoreDNS", started)
            self._start_firewall()
            self._mark("kube-router", started)
            self._storage()
            self._keep_off_simulated_node()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Pods first (CNI DEL while containerd runs), then the daemons, then the host."""
        kubelet = next((p for p in self.processes if p.name == "kubelet"), None)
        if kubelet is not None:
            kubelet.stop()
        if self.socket.exists():
            self.crictl("rmp", "--force", "--all", check=False, timeout=120)
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        with contextlib.suppress(Exception):
            subprocess.run(
                [self.k8s_bin / "kube-proxy", "--cleanup"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        kill_cgroup_processes()  # shims and whatever they left
        unmount_under(self.root)

    # -- tools -----------------------------------------------------------------------------

    def crictl(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / "crictl"), f"--runtime-endpoint=unix://{self.socket}", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"crictl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def ctr(self, *args: str, timeout: float = 300) -> str:
        argv = [str(self.bin / "ctr"), f"--address={self.socket}", "--namespace=k8s.io", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def import_images(self) -> None:
        """The sandbox and probe images; the project's (hack/images/build.sh) when it exists."""
        for archive in ("pause.tar", "probe.tar"):
            self.ctr("images", "import", str(self.cache / "images" / archive))
        if IMAGES_BUILD.exists():
            result = subprocess.run(
                ["bash", str(IMAGES_BUILD), "import", str(self.bin / "ctr"), str(self.socket)],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            (self.root / "images-import.log").write_text(result.stdout + result.stderr)
            if result.returncode != 0:
                raise RuntimeError(f"{IMAGES_BUILD} import failed:\n{result.stderr[-4000:]}")

    def images(self) -> list[str]:
        return [line.split()[0] for line in self.ctr("images", "list", "-q").splitlines() if line]

    # -- daemons ---------------------------------------------------------------------------

    def _spawn(
        self, name: str, argv: list[str | Path], env: dict[str, str] | None = None
    ) -> Process:
        proc = Process(name, argv, self.root, env=env, cgroups=self.host.system_cgroups())
        self.processes.append(proc)
        return proc

    def _mark(self, what: str, since: float) -> None:
        self.timings[what] = round(time.monotonic() - since, 1)

    def _start_containerd(self) -> None:
        base = self.root / "containerd"
        cni_conf = self.root / "cni"
        for d in (base, cni_conf):
            d.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-mlops.conflist").write_text(json.dumps(cni_config(), indent=2))
        config = base / "config.toml"
        config.write_text(containerd_config(base, self.cache, cni_conf, pause_image()))
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        proc = self._spawn("containerd", [self.bin / "containerd", f"--config={config}"], env)
        wait_until(
            "containerd's CRI",
            lambda: self.crictl("info", check=False, timeout=10).returncode == 0,
            60,
            [proc],
        )

    def _start_kubelet(self) -> None:
        pki = self.pki
        user = f"system:node:{NODE_NAME}"
        kubeconfig = self.root / "kubelet.kubeconfig"
        write_kubeconfig(
            kubeconfig, self.cluster_url, pki.ca.cert, pki.client(user, ("system:nodes",))
        )
        serving = pki.server(NODE_NAME, (NODE_ADDRESS,), (NODE_NAME,))
        port, healthz = free_port(), free_port()
        config = self.root / "kubelet.yaml"
        config.write_text(
            yaml.safe_dump(
                kubelet_config(self.socket, pki.ca.cert, serving, port=port, healthz=healthz)
            )
        )
        proc = self._spawn(
            "kubelet",
            [
                self.k8s_bin / "kubelet",
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.root / 'kubelet'}",
                f"--cert-dir={self.root / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_ADDRESS}",
                "--v=1",
            ],
        )
        wait_until(
            f"node {NODE_NAME} Ready", lambda: node_ready(self.cluster.core, NODE_NAME), 120, [proc]
        )

    @property
    def cluster_url(self) -> str:
        return f"https://{NODE_ADDRESS}:{self._apiserver_port()}"

    def _apiserver_port(self) -> int:
        doc = yaml.safe_load(self.cluster.kubeconfig.read_text())
        return int(doc["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1])

    def _start_kube_proxy(self) -> None:
        kubeconfig = self.root / "kube-proxy.kubeconfig"
        write_kubeconfig(
            kubeconfig, self.cluster_url, self.pki.ca.cert, self.pki.client("system:kube-proxy")
        )
        healthz = free_port()
        config = self.root / "kube-proxy.yaml"
        config.write_text(yaml.safe_dump(kube_proxy_config(kubeconfig, healthz, free_port())))
        proc = self._spawn(
            "kube-proxy", [self.k8s_bin / "kube-proxy", f"--config={config}", "--v=1"]
        )
        wait_until(
            "kube-proxy /healthz",
            lambda: _http(f"http://127.0.0.1:{healthz}/healthz").startswith("{"),
            60,
            [proc],
        )

    def _start_firewall(self) -> None:
        """kube-router as the NetworkPolicy firewall only (no routing, no service proxy): its
        chains in the filter table's INPUT, FORWARD and OUTPUT see the bridge's traffic
        (bridge-nf-call-iptables), its ip sets hold the Pods each policy selects. Ready once its
        first sync has put the explicit ACCEPT at the end of its FORWARD chain."""
        user = "system:kube-router"
        self.cluster.apply(*cluster_role(user, KUBE_ROUTER_RULES, user_subject(user)))
        kubeconfig = self.root / "kube-router.kubeconfig"
        write_kubeconfig(kubeconfig, self.cluster_url, self.pki.ca.cert, self.pki.client(user))
        proc = self._spawn(
            "kube-router",
            [
                self.bin / "kube-router",
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-cni=false",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--health-port=0",
                "--metrics-port=0",
                "--v=1",
            ],
        )
        wait_until("kube-router's first sync", firewall_synced, 60, [proc])

    def _start_coredns(self) -> None:
        """CoreDNS as a node process on NODE_ADDRESS:53, behind the kube-dns Service (a
        ClusterIP with an EndpointSlice naming that address), so Pods use it as in a cluster."""
        user = "system:coredns"
        self.cluster.apply(
            *cluster_role(user, COREDNS_RULES, user_subject(user)), *kube_dns_service()
        )
        kubeconfig = self.root / "coredns.kubeconfig"
        write_kubeconfig(kubeconfig, self.cluster_url, self.pki.ca.cert, self.pki.client(user))
        ready, health = free_port(), free_port()
        corefile = self.root / "Corefile"
        corefile.write_text(
            f"""cluster.local:53 in-addr.arpa:53 {{
    bind {NODE_ADDRESS}
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa {{
        kubeconfig {kubeconfig} mlops-test
        pods insecure
        ttl 5
    }}
    cache 5
}}
"""
        )
        proc = self._spawn("coredns", [self.bin / "coredns", "-conf", corefile])
        wait_until(
            "CoreDNS /ready", lambda: _http(f"http://127.0.0.1:{ready}/ready") == "OK", 60, [proc]
        )

    def _storage(self) -> None:
        """A default StorageClass and VOLUMES static local volumes on this node, bound on a
        Pod's first use (WaitForFirstConsumer), like a local-path provisioner's; the
        directories are world-writable (0777, as such provisioners make them), so non-root
        Pods write to them."""
        docs: list[dict[str, Any]] = [
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Delete",
            }
        ]
        for n in range(VOLUMES):
            path = self.root / "volumes" / f"pv-{n}"
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            docs.append(local_volume(f"{NODE_NAME}-pv-{n}", path))
        self.cluster.apply(*docs)

    def _keep_off_simulated_node(self) -> None:
        """kwok's node would take Pods the real node should run: taint it NoSchedule."""
        for node in self.cluster.core.list_node().items:
            if node.metadata.name != NODE_NAME:
                taints = [t.to_dict() for t in node.spec.taints or []]
                if not any(t["key"] == SIMULATED_TAINT["key"] for t in taints):
                    body = {"spec": {"taints": [*taints, SIMULATED_TAINT]}}
                    self.cluster.core.patch_node(node.metadata.name, body)

    def logs(self) -> dict[str, str]:
        return {p.name: p.log.read_text(errors="replace") for p in self.processes}


# -- configuration -------------------------------------------------------------------------


FIREWALL_ACCEPT = "rule to explicitly ACCEPT traffic that comply to network policies"
"""The comment of the rule kube-router appends to its chains at the end of each full sync."""


def firewall_rules() -> str:
    """The filter table as iptables-save prints it (kube-router's chains among it)."""
    return subprocess.run(
        ["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True
    ).stdout


def firewall_synced() -> bool:
    return any(
        line.startswith("-A KUBE-ROUTER-FORWARD") and FIREWALL_ACCEPT in line
        for line in firewall_rules().splitlines()
    )


def cni_config() -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                # The host gives the bridge its address (host.py): a gateway bridge would
                # switch on forwarding for every interface.
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_ADDRESS}]],
                    # No default route: Pods reach the node and Services, nothing else.
                    "routes": [{"dst": SERVICE_CIDR, "gw": NODE_ADDRESS}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
        ],
    }


@dataclass(frozen=True)
class ProjectImages:
    project: str  # the Dockerfile's image: operator, training, model servers, load
    router: str  # the builtin router's nginx


def project_images() -> ProjectImages:
    """The references hack/images/build.sh gives the project and router images."""
    if not IMAGES_BUILD.exists():
        pytest.skip(f"{IMAGES_BUILD} does not exist yet: no project image")
    result = subprocess.run(
        ["bash", str(IMAGES_BUILD), "refs"], capture_output=True, text=True, check=True
    )
    refs = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    project = next(r for r in refs if r.rsplit("/", 1)[-1].startswith("mlops-operator:"))
    router = next(r for r in refs if "nginx" in r)
    return ProjectImages(project, router)


def pause_image() -> str:
    return _build_output("pause-image")


def probe_image() -> str:
    """The smoke tests' image (hack/node/probe/main.go)."""
    return _build_output("probe-image")


def _build_output(command: str) -> str:
    result = subprocess.run(
        ["bash", str(NODE_BUILD), command], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def containerd_config(base: Path, cache: Path, cni_conf: Path, sandbox: str) -> str:
    cni_bin, runc = cache / "cni", cache / "bin" / "runc"
    return f"""version = 3
root = "{base / "root"}"
state = "{base / "state"}"

[grpc]
  address = "{base / "containerd.sock"}"

[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"

[debug]
  level = "info"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{sandbox}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE (not in the bounding set): no process may lower an
  # oom_score_adj below 0, so Pods get at least containerd's own instead of -997/-998.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{base / "state" / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def kubelet_config(
    socket: Path, ca: Path, serving: Pair, *, port: int, healthz: int
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine has cgroup v1 only (v1 is deprecated since 1.35).
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP}",
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": NODE_ADDRESS,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": "cluster.local",
        "resolvConf": "",
        "staticPodPath": "",
        "maxPods": 110,
        "serializeImagePulls": False,
        # The images were imported, not pulled: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "protectKernelDefaults": False,
        "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE for -999 (see containerd_config)
    }


def kube_proxy_config(kubeconfig: Path, healthz: int, metrics: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_ADDRESS,
        "clusterCIDR": CLUSTER_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        # NodePorts only on the bridge, never on the machine's own interfaces.
        "nodePortAddresses": [f"{NODE_ADDRESS}/32"],
        # Leave the host's conntrack sysctls alone.
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
    }


def kube_dns_service() -> list[dict[str, Any]]:
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": CLUSTER_DNS, "ports": [{**p, "targetPort": 53} for p in ports]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "mlops-tests",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_ADDRESS], "conditions": {"ready": True}}],
            "ports": [{"name": p["name"], "port": 53, "protocol": p["protocol"]} for p in ports],
        },
    ]


def local_volume(name: str, path: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "20Gi"},
            "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [NODE_NAME],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def _http(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=3) as response:
        return str(response.read().decode())


def pod_logs(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    """Every container's log (and the previous instance's, after a restart) in `namespace`."""
    logs = {}
    for pod in core.list_namespaced_pod(namespace).items:
        for status in pod.status.container_statuses or []:
            key = f"{namespace}/{pod.metadata.name}/{status.name}"
            with contextlib.suppress(client.ApiException):
                logs[key] = core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, container=status.name
                )
            if status.restart_count:
                with contextlib.suppress(client.ApiException):
                    logs[key + " (previous)"] = core.read_namespaced_pod_log(
                        pod.metadata.name, namespace, container=status.name, previous=True
                    )
    return logs


__all__ = ["RealNode", "node_binaries", "pod_logs", "wait_for"]


@contextlib.contextmanager
def started_node(root: Path) -> Iterator[tuple[Cluster, RealNode]]:
    """The host, the control plane on the node's bridge and the real node, as the `cluster`
    and `node` fixtures start them (the lock waits for another session's node to go)."""
    cache = find_binaries()
    host = NodeHost(root / "realnode")
    host.setup()
    plane = ControlPlane(cache / "bin", cache, root / "cluster")
    plane.address = NODE_ADDRESS
    try:
        plane.start()
        api = config.new_client_from_config(config_file=str(plane.admin_kubeconfig))
        found = Cluster(plane.admin_kubeconfig, api, True, plane.root, cache, plane.pki, plane)
        assert plane.pki is not None
        node = RealNode(found, plane.pki, host, cache / "bin", node_binaries(), host.root)
        node.start()
        try:
            yield found, node
        finally:
            node.stop()
            api.close()
    finally:
        plane.stop()
        host.teardown()
