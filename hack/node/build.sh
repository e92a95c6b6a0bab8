#!/usr/bin/env bash
# Builds the real test node's binaries from Go modules pinned in hack/node/go.mod, once per
# machine: containerd, containerd-shim-runc-v2, ctr, runc (with seccomp: cgo and libseccomp),
# crictl, CoreDNS (coredns/main.go) and the CNI plugins bridge, host-local, loopback and
# portmap. kubelet and kube-proxy are built with the control plane (hack/k8s/build.sh);
# iptables, conntrack, gcc and libseccomp-dev come from Debian (hack/setup.sh installs them).
# Debian's runc (1.1.5) fails every containerd 2 sandbox here ("can't get final child's PID
# from pipe: EOF"), so runc is built too. Beside them, images/pause.tar: the sandbox image, pause.c of
# the k8s.io/kubernetes module pinned in hack/k8s/go.mod compiled statically with gcc, as a
# docker-archive for `ctr images import` (named $pause_image), and images/probe.tar, the smoke
# tests' image (probe/main.go: an HTTP server and client, a resolver, a file writer). And the
# node's NetworkPolicy enforcer, kube-router (its own module, kube-router/go.mod, so its client
# libraries never move the pins above), run as a firewall only beside the bridge CNI (it needs
# Debian's ipset, which hack/setup.sh installs).
#
#   hack/node/build.sh          build when missing or when the pins changed; print the cache dir
#   hack/node/build.sh dir      print the cache dir (no build)
#   hack/node/build.sh bin      print the bin dir (no build)
#   hack/node/build.sh pause-image  print the sandbox image's name (probe-image: the smoke tests')
#
# Cache: ${MLOPS_NODE_CACHE:-~/.cache/mlops-operator/node-<containerd version>-<stamp>}: bin/ (the
# binaries) and cni/ (the plugins); a stamp holds the hash of the pins, of coredns/main.go
# and of $recipe, so a change of any of them rebuilds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

module_version() { awk -v m="$1" '$1 == m {print $2; exit}' "$here/go.mod"; }

containerd_version=$(module_version github.com/containerd/containerd/v2)
kube_router_version=$(awk '$1 == "github.com/cloudnativelabs/kube-router/v2" {print $2; exit}' "$here/kube-router/go.mod")
bins=(containerd containerd-shim-runc-v2 ctr runc crictl coredns kube-router)
plugins=(bridge host-local loopback portmap)
pause_image=mlops-pause:3.10.2
probe_image=mlops-probe:1
recipe=2 # bump when the build below changes (flags, binaries)
stamp_value=$({ echo "$recipe ${bins[*]} ${plugins[*]}" && cat "$here"/go.{mod,sum} "$here"/kube-router/go.{mod,sum} "$here"/coredns/*.go "$here"/probe/*.go "$here"/image-archive.py \
  && grep '^	k8s.io/kubernetes ' "$here/../k8s/go.mod"; } |
  sha256sum | cut -c1-16)
# One directory per pin set: checkouts on other pins (branches) keep theirs, no rebuild ping-pong.
cache=${MLOPS_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-operator/node-$containerd_version-$stamp_value}

export GOTOOLCHAIN=${MLOPS_GOTOOLCHAIN:-auto}
export GOFLAGS=-mod=readonly
# Static binaries: the shim and the plugins run in other mount namespaces; no btrfs (cgo).
export CGO_ENABLED=0

ldflags() {
  printf -- '-X github.com/containerd/containerd/v2/version.Version=%s ' "$containerd_version"
  printf -- '-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=%s ' \
    "$(module_version github.com/containernetworking/plugins)"
  printf -- '-X sigs.k8s.io/cri-tools/pkg/version.Version=%s ' "$(module_version sigs.k8s.io/cri-tools)"
  printf -- '-X github.com/coredns/coredns/coremain.GitCommit=%s ' "$(module_version github.com/coredns/coredns)"
  printf -- '-X main.version=%s ' "$(module_version github.com/opencontainers/runc)"
  printf -- '-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=%s ' "$kube_router_version"
  printf -- '-s -w'
}

up_to_date() {
  [ "$(cat "$cache/.stamp" 2>/dev/null)" = "$stamp_value" ] || return 1
  local b
  for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done
  for b in "${plugins[@]}"; do [ -x "$cache/cni/$b" ] || return 1; done
  [ -f "$cache/images/pause.tar" ] && [ -f "$cache/images/probe.tar" ]
}

pause() {
  local kube src
  kube=$(cd "$here/../k8s" && go mod download -json k8s.io/kubernetes | awk -F'"' '/"Dir"/ {print $4}')
  src=$kube/build/pause/linux/pause.c
  mkdir -p "$1/images"
  gcc -Os -Wall -Werror -static -DVERSION="v${pause_image#*:}" -o "$1/images/pause" "$src"
  strip "$1/images/pause"
  python3 "$here/image-archive.py" "$1/images/pause.tar" "$pause_image" /pause "$1/images/pause=/pause"
  rm "$1/images/pause"
  python3 "$here/image-archive.py" "$1/images/probe.tar" "$probe_image" /probe "$1/bin/probe=/probe"
  rm "$1/bin/probe"
}

# Keeps the three newest pin sets' directories (other checkouts may use them), removes older.
prune() {
  local old
  for old in $(ls -1dt "$(dirname "$cache")"/node-$containerd_version-*[0-9a-f] 2>/dev/null | tail -n +4); do
    [ "$old" = "$cache" ] || rm -rf "$old" "$old.lock"
  done
}

build() {
  local tmp start tools
  tmp="$cache.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp/bin" "$tmp/cni"
  trap 'rm -rf "$tmp"' EXIT
  start=$(date +%s)
  echo "node: building ${bins[*]} and the CNI plugins ${plugins[*]} into $cache" >&2
  tools=$(sed -n '/^tool (/,/^)/p' "$here/go.mod" | sed '1d;$d' | grep -v opencontainers/runc)
  # One go build, so the packages they share compile once; runc needs cgo for seccomp.
  (cd "$here" && nice -n 10 go build -trimpath -ldflags "$(ldflags)" -o "$tmp/bin/" $tools ./coredns ./probe)
  (cd "$here" && CGO_ENABLED=1 nice -n 10 go build -trimpath -tags seccomp -ldflags "$(ldflags)" \
    -o "$tmp/bin/runc" github.com/opencontainers/runc)
  (cd "$here/kube-router" && nice -n 10 go build -trimpath -ldflags "$(ldflags)" \
    -o "$tmp/bin/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
  local p
  for p in "${plugins[@]}"; do mv "$tmp/bin/$p" "$tmp/cni/$p"; done
  pause "$tmp"
  echo "$stamp_value" >"$tmp/.stamp"
  [ ! -e "$cache" ] || mv "$cache" "$tmp.old"
  mv "$tmp" "$cache" && rm -rf "$tmp.old"
  trap - EXIT
  prune
  echo "node: built in $(($(date +%s) - start))s" >&2
}

case "${1:-build}" in
  dir) echo "$cache" ;;
  bin) echo "$cache/bin" ;;
  pause-image) echo "$pause_image" ;;
  probe-image) echo "$probe_image" ;;
  build)
    mkdir -p "$(dirname "$cache")"
    exec 9>"$cache.lock"
    flock 9 # another checkout may be building the same pins: wait, then reuse its result
    up_to_date || build
    echo "$cache"
    ;;
  *) echo "usage: $0 [build|dir|bin|pause-image|probe-image]" >&2 && exit 2 ;;
esac
