"""The host side of the real node: its bridge, its cgroup, its firewall guard, and the
cleanup that removes every trace of a node, also of one a killed run left behind.

One real node per machine at a time (kube-proxy owns the host's KUBE-* chains): a lock in
STATE_DIR, beside a record of the running node's directory, which the next run cleans up
first if the run that wrote it was killed.

Network: the bridge BRIDGE carries NODE_ADDRESS, the node's InternalIP, where the API
server, the kubelet and CoreDNS listen; Pods get addresses of POD_SUBNET on it and routes
only to the bridge and the Service range: no default route, no masquerading, and a
FORWARD guard drops anything that would leave the bridge, so nothing a Pod sends can leave
the machine (in the mangle table, which a packet meets before any filter rule: the
NetworkPolicy enforcer's ACCEPTs come first in the filter table). Only the bridge forwards
(net.ipv4.conf.<bridge>.forwarding; ip_forward stays as it is).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.cluster.controlplane import SERVICE_CIDR

BRIDGE = "mlops-br0"
NODE_ADDRESS = "10.244.128.1"
POD_SUBNET = "10.244.128.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_DNS = "10.96.0.10"
NODE_NAME = "real-node-0"
CGROUP = "mlops-node"
CGROUP_ROOT = Path("/sys/fs/cgroup")
STATE_DIR = Path(os.environ.get("MLOPS_NODE_STATE_DIR", "/run/mlops-operator"))
GUARD = "MLOPS-NODE-GUARD"
CNI_NETWORK = "mlops-node"  # the CNI network's name (realnode.cni_config)
LOCK_WAIT = 120.0
# What the kubelet (protectKernelDefaults: false) and kube-proxy write; restored afterwards.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
)
IPSET_PREFIX = "KUBE-"
CHAIN = re.compile(r"^:((?:KUBE|CNI)-[\w-]+|" + GUARD + r") ")


class HostError(RuntimeError):
    pass


def run(*argv: str | Path, check: bool = True, timeout: float = 60) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise HostError(f"{' '.join(map(str, argv))} failed: {result.stderr.strip()}")
    return result.stdout


def missing_prerequisites() -> list[str]:
    """What this machine lacks for a real node (empty when it can run one)."""
    missing = [] if os.geteuid() == 0 else ["root"]
    missing += [
        t
        for t in ("ip", "iptables", "iptables-save", "conntrack", "mount")
        if shutil.which(t) is None
    ]
    if not (CGROUP_ROOT / "pids").is_dir() and not (CGROUP_ROOT / "cgroup.controllers").exists():
        missing.append("cgroups")
    if not Path("/proc/sys/net/bridge").is_dir():
        missing.append("br_netfilter (net.bridge.bridge-nf-call-iptables)")
    return missing


@dataclass
class NodeHost:
    """The bridge, the lock and the record; `setup` before the API server binds NODE_ADDRESS."""

    root: Path
    lock: IO[str] | None = None
    cgroups: list[Path] = field(default_factory=list)

    def setup(self) -> None:
        if missing := missing_prerequisites():
            raise HostError(f"a real node needs {', '.join(missing)} (hack/setup.sh)")
        self._lock()
        try:
            cleanup()  # what a killed run left behind
            if left := leftovers():
                raise HostError(f"could not clean up a previous node: {left}")
            self._save_sysctls()
            (STATE_DIR / "node.json").write_text(json.dumps({"root": str(self.root)}))
            self.root.mkdir(parents=True, exist_ok=True)
            self._bridge()
            self._guard()
            self.cgroups = make_cgroups()
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        """Cleans up, then checks that nothing is left (an error of the session otherwise)."""
        try:
            cleanup()
            if left := leftovers(self.root):
                raise HostError(f"the real node left {left}")
        finally:
            if self.lock is not None:
                self.lock.close()
                self.lock = None

    def system_cgroups(self) -> list[Path]:
        """Where node daemons run: containerd (and so its shims), kubelet, kube-proxy, CoreDNS."""
        return [c / "system" for c in self.cgroups if (c / "system").is_dir()]

    def _lock(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        lock = (STATE_DIR / "node.lock").open("w")
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise HostError(
                        f"another session runs the real node ({STATE_DIR / 'node.json'})"
                    ) from None
                time.sleep(1)
        self.lock = lock

    def _save_sysctls(self) -> None:
        saved = STATE_DIR / "sysctl.json"
        if saved.exists():  # the values from before a killed run: keep them
            return
        values = {}
        for key in SYSCTLS:
            with contextlib.suppress(OSError):
                values[key] = (Path("/proc/sys") / key).read_text().strip()
        saved.write_text(json.dumps(values))

    def _bridge(self) -> None:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{NODE_ADDRESS}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        # The host's own traffic to Service addresses stays on the bridge too.
        run("ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_ADDRESS)
        sysctl(f"net/ipv4/conf/{BRIDGE}/forwarding", "1")
        sysctl("net/bridge/bridge-nf-call-iptables", "1")

    def _guard(self) -> None:
        for iptables in ("iptables", "ip6tables"):
            table = (iptables, "-w", "-t", "mangle")
            run(*table, "-N", GUARD)
            run(*table, "-A", GUARD, "-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN")
            run(*table, "-A", GUARD, "-i", BRIDGE, "-j", "DROP")
            run(*table, "-A", GUARD, "-o", BRIDGE, "-j", "DROP")
            run(*table, "-I", "FORWARD", "1", "-j", GUARD)


def sysctl(key: str, value: str) -> None:
    (Path("/proc/sys") / key).write_text(value)


def make_cgroups() -> list[Path]:
    """CGROUP in every v1 hierarchy (the kubelet's cgroupRoot), with CGROUP/system beside
    the kubelet's kubepods for the node's daemons."""
    made = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()):
        if not hierarchy.is_dir() or hierarchy.name == "unified":
            continue
        ours = hierarchy / CGROUP
        for path in (ours, ours / "system"):
            path.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (path / knob).write_text((hierarchy / knob).read_text())
        made.append(ours)
    return made


def cleanup() -> None:
    """Removes everything a real node leaves on the host, whether it was stopped or killed:
    processes, mounts, network devices, netns, iptables rules, cgroups, sysctl changes."""
    record = STATE_DIR / "node.json"
    roots = []
    with contextlib.suppress(OSError, ValueError):
        roots.append(Path(json.loads(record.read_text())["root"]))
    kill_cgroup_processes()
    for root in roots:
        unmount_under(root)
    delete_links()
    flush_chains()
    destroy_ipsets()
    with contextlib.suppress(HostError):
        run("conntrack", "-D", "-s", POD_SUBNET, check=False)
    remove_cgroups()
    restore_sysctls()
    remove_stale_shim_sockets()
    # Left by shims (their socket dir is fixed): removed when empty, so never another's.
    for empty in (
        "/run/containerd/s",
        "/run/containerd/runc/k8s.io",
        "/run/containerd/runc",
        "/run/containerd",
    ):
        with contextlib.suppress(OSError):
            Path(empty).rmdir()
    record.unlink(missing_ok=True)


def cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for procs in CGROUP_ROOT.glob(f"*/{CGROUP}/**/cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in procs.read_text().split())
    pids.discard(os.getpid())
    return pids


def kill_cgroup_processes(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while pids := cgroup_pids():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise HostError(f"processes of cgroup {CGROUP} survive SIGKILL: {sorted(pids)}")
        time.sleep(0.1)


def unmount_under(root: Path) -> None:
    """Unmounts (lazily, deepest first) every mount point under `root`: container rootfs,
    shm, netns bind mounts, volumes."""
    prefix = str(root.resolve()) + "/"
    for _ in range(10):
        points = [p for p in _mount_points() if p.startswith(prefix) or p == prefix.rstrip("/")]
        if not points:
            return
        for point in sorted(points, key=len, reverse=True):
            run("umount", "-l", point, check=False)
    raise HostError(f"mounts under {root} survive umount: {points}")


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), point))
    return points


def delete_links() -> None:
    """The veths on the bridge (their Pod ends go with them), then the bridge."""
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        return
    for port in Path(f"/sys/class/net/{BRIDGE}/brif").iterdir():
        run("ip", "link", "del", port.name, check=False)
    run("ip", "link", "del", BRIDGE, check=False)


def flush_chains() -> None:
    """Every KUBE-*, CNI-* and guard chain, and the rules jumping to them, in all tables."""
    for save, iptables in (("iptables-save", "iptables"), ("ip6tables-save", "ip6tables")):
        if shutil.which(save) is None:
            continue
        ours, jumps = _our_chains(run(save, check=False))
        for table, rule in jumps:
            run(iptables, "-w", "-t", table, *rule, check=False)
        for table, names in ours.items():
            for flag in ("-F", "-X"):
                for name in names:
                    run(iptables, "-w", "-t", table, flag, name, check=False)


def _our_chains(saved: str) -> tuple[dict[str, list[str]], list[tuple[str, list[str]]]]:
    """Our chains per table, and the rules of other chains that jump to them (to delete).

    Ours: KUBE-* (only our kubelet and kube-proxy run here: the lock), the guard, and the CNI-*
    chains whose rules name our network (portmap's); other tools' CNI chains (podman's) stay.
    """
    chains: dict[str, list[str]] = {}
    rules: list[tuple[str, list[str]]] = []
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif m := CHAIN.match(line):
            chains.setdefault(table, []).append(m.group(1))
        elif line.startswith("-A "):
            rules.append((table, shlex.split(line)))
    ours: dict[str, list[str]] = {}
    for t, names in chains.items():
        cni_ours = {w[1] for tt, w in rules if tt == t and CNI_NETWORK in " ".join(w)}
        ours[t] = [n for n in names if not n.startswith("CNI-") or n in cni_ours]
    jumps = [
        (t, ["-D", *words[1:]])
        for t, words in rules
        if words[1] not in ours.get(t, []) and any(w in ours.get(t, []) for w in words)
    ]
    return ours, jumps


def our_ipsets() -> list[str]:
    """The NetworkPolicy enforcer's ip sets (kube-router's KUBE-*: ours, by the lock)."""
    if shutil.which("ipset") is None:
        return []
    names = run("ipset", "list", "-n", check=False).split()
    return [name for name in names if name.startswith(IPSET_PREFIX)]


def destroy_ipsets() -> None:
    """After flush_chains: a set still named by a rule cannot be destroyed."""
    for name in our_ipsets():
        run("ipset", "destroy", name, check=False)


def remove_cgroups() -> None:
    for hierarchy in CGROUP_ROOT.iterdir():
        ours = hierarchy / CGROUP
        if not ours.is_dir():
            continue
        for path in sorted((p for p in ours.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            ours.rmdir()


def remove_stale_shim_sockets() -> None:
    """Sockets of killed shims in containerd's fixed socket dir: those no process listens on."""
    shims = Path("/run/containerd/s")
    if not shims.is_dir():
        return
    listening = {line.split()[-1] for line in Path("/proc/net/unix").read_text().splitlines()[1:]}
    for sock in shims.iterdir():
        if sock.is_socket() and str(sock) not in listening:
            sock.unlink(missing_ok=True)


def restore_sysctls() -> None:
    saved = STATE_DIR / "sysctl.json"
    with contextlib.suppress(OSError, ValueError):
        for key, value in json.loads(saved.read_text()).items():
            with contextlib.suppress(OSError):
                sysctl(key, value)
    saved.unlink(missing_ok=True)


def leftovers(root: Path | None = None) -> list[str]:
    """What of a node is still on the host (for the teardown test)."""
    found = []
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        found.append(f"link {BRIDGE}")
    found += [f"cgroup process {p}" for p in cgroup_pids()]
    found += [f"cgroup {h / CGROUP}" for h in CGROUP_ROOT.iterdir() if (h / CGROUP).exists()]
    if root is not None:
        under = str(root.resolve()) + "/"
        found += [f"mount {p}" for p in _mount_points() if p.startswith(under)]
    found += [f"ipset {name}" for name in our_ipsets()]
    for save in ("iptables-save", "ip6tables-save"):
        if shutil.which(save):
            ours, _ = _our_chains(run(save, check=False))
            found += [f"{save}: {t} {name}" for t, names in ours.items() for name in names]
    return found
