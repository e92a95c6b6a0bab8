#!/usr/bin/env bash
# Builds the test control plane from Go modules pinned in hack/k8s/go.mod, once per machine:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl, helm,
#   and the real test node's kubelet and kube-proxy (one compile; hack/node/build.sh does the rest)
# and copies beside them kwok's default stages and the Gateway API and Istio CRDs pinned in
# hack/k8s/crds/go.mod.
#
#   hack/k8s/build.sh          build when missing or when the pins changed; print the cache dir
#   hack/k8s/build.sh dir      print the cache dir (no build)
#   hack/k8s/build.sh bin      print the bin dir (no build)
#   hack/k8s/build.sh crds     print the copied CRD files, one path a line (no build)
#
# Cache: ${MLOPS_K8S_CACHE:-~/.cache/mlops-operator/k8s-<kube version>-<stamp>}; the stamp is the
# hash of the pins and of $recipe, so a change of go.mod/go.sum (or of the recipe) builds anew.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

kube_version=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$here/go.mod")
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl helm kubelet kube-proxy)
recipe=2 # bump when the build below changes (flags, binaries, copied files)
stamp_value=$({ echo "$recipe ${bins[*]}" && cat "$here"/go.{mod,sum} "$here"/crds/go.{mod,sum}; } |
  sha256sum | cut -c1-16)
# One directory per pin set: checkouts on other pins (branches) keep theirs, no rebuild ping-pong.
cache=${MLOPS_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-operator/k8s-$kube_version-$stamp_value}

export GOTOOLCHAIN=${MLOPS_GOTOOLCHAIN:-auto}
export GOFLAGS=-mod=readonly

module_version() { awk -v m="$1" '$1 == m {print $2; exit}' "$here/go.mod"; }

ldflags() {
  local v=$kube_version minor
  minor=$(echo "$v" | cut -d. -f2)
  local now
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local x
  for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s ' "$x" "$v" "$x" "$x" "$minor"
    printf -- '-X %s.gitTreeState=clean -X %s.buildDate=%s ' "$x" "$x" "$now"
  done
  printf -- '-X helm.sh/helm/v4/internal/version.version=%s ' "$(module_version helm.sh/helm/v4)"
  printf -- '-s -w'
}

up_to_date() {
  [ "$(cat "$cache/.stamp" 2>/dev/null)" = "$stamp_value" ] || return 1
  local b
  for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done
}

module_dir() { (cd "$1" && go mod download -json "$2" | awk -F'"' '/"Dir"/ {print $4}'); }

copy_assets() {
  local gw istio kwok
  gw=$(module_dir "$here/crds" sigs.k8s.io/gateway-api)
  istio=$(module_dir "$here/crds" istio.io/api)
  kwok=$(module_dir "$here" sigs.k8s.io/kwok)/kustomize/stage
  mkdir -p "$1/crds/gateway-api" "$1/crds/istio" "$1/kwok-stages"
  install -m 0644 "$gw"/config/crd/standard/*.yaml "$1/crds/gateway-api/"
  install -m 0644 "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$1/crds/istio/"
  install -m 0644 "$kwok"/node/fast/node-initialize.yaml \
    "$kwok"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$kwok"/pod/fast/pod-{ready,complete,delete}.yaml "$1/kwok-stages/"
}

# Keeps the three newest pin sets' directories (other checkouts may use them), removes older.
prune() {
  local old
  for old in $(ls -1dt "$(dirname "$cache")"/k8s-$kube_version-*[0-9a-f] 2>/dev/null | tail -n +4); do
    [ "$old" = "$cache" ] || rm -rf "$old" "$old.lock"
  done
}

build() {
  local tmp start
  tmp="$cache.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp/bin"
  trap 'rm -rf "$tmp"' EXIT
  start=$(date +%s)
  echo "k8s: building ${bins[*]} (kubernetes $kube_version) into $cache; a cold build takes a while" >&2
  (cd "$here" && nice -n 10 go build -trimpath -ldflags "$(ldflags)" -o "$tmp/bin/" \
    $(sed -n '/^tool (/,/^)/p' go.mod | sed '1d;$d'))
  mv "$tmp/bin/server" "$tmp/bin/etcd"
  copy_assets "$tmp"
  echo "$stamp_value" >"$tmp/.stamp"
  [ ! -e "$cache" ] || mv "$cache" "$tmp.old"
  mv "$tmp" "$cache" && rm -rf "$tmp.old"
  trap - EXIT
  prune
  echo "k8s: built in $(($(date +%s) - start))s" >&2
}

case "${1:-build}" in
  dir) echo "$cache" ;;
  bin) echo "$cache/bin" ;;
  crds) find "$cache/crds" -name '*.yaml' | sort ;;
  build)
    mkdir -p "$(dirname "$cache")"
    exec 9>"$cache.lock"
    flock 9 # another checkout may be building the same pins: wait, then reuse its result
    up_to_date || build
    echo "$cache"
    ;;
  *) echo "usage: $0 [build|dir|bin|crds]" >&2 && exit 2 ;;
esac
