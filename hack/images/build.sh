#!/usr/bin/env bash
# Builds the images of the real-node tests without a Docker engine and without a container
# registry, from Debian packages, Go modules and the project's own files, as OCI archives:
#
#   base     localhost/mlops/debian-python:bookworm    Debian bookworm minbase + python3 (mmdebstrap)
#   project  localhost/mlops-operator:<version>        the repository's Dockerfile on that base
#   router   localhost/mlops/nginx-unprivileged:bookworm  Debian's nginx, the contract of the
#            unprivileged nginx image the operator names by default (port 8080, non-root, /tmp)
#   pause    localhost/mlops/pause:<version>           Kubernetes' pause.c, static, FROM scratch
#
#   hack/images/build.sh                     build what is missing or stale; print the archives
#   hack/images/build.sh dir                 print the cache dir (no build)
#   hack/images/build.sh paths               print the archives, one a line (no build)
#   hack/images/build.sh refs                print "<image reference> <archive>" lines (no build)
#   hack/images/build.sh status              print "<image> fresh|stale" lines (no build)
#   hack/images/build.sh stamp <image>       print an image's input hash (no build)
#   hack/images/build.sh import <ctr> <address>
#                                            build if needed, then import project, router and
#                                            pause into containerd's k8s.io namespace
#   hack/images/build.sh prune               drop the layer cache (intermediate images)
#
# Cache: ${MLOPS_IMAGES_CACHE:-~/.cache/mlops-operator/images}: the archives, buildah's own
# storage (vfs driver, chroot isolation: no daemon, no overlay mounts), logs and one stamp per
# image. A stamp is a hash of the image's inputs (this script, and for the project image its
# base's stamp, the Dockerfile, .dockerignore and every file of the build context), so only an
# image whose inputs changed is rebuilt. Needs root (mmdebstrap --mode=root, buildah's storage);
# installs buildah, mmdebstrap and gcc/libc6-dev with apt-get when they are missing.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
self="$here/$(basename "$0")"

cache=${MLOPS_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-operator/images}
version=$(awk -F'"' '/^version = / {print $2; exit}' "$repo/pyproject.toml")
kube_version=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$repo/hack/k8s/go.mod")
# The pause version of that Kubernetes release (build/pause/Makefile's TAG); the build checks it.
pause_version=3.10.2
suite=bookworm

images=(base project router pause)
declare -A ref=(
  [base]="localhost/mlops/debian-python:$suite"
  [project]="localhost/mlops-operator:$version"
  [router]="localhost/mlops/nginx-unprivileged:$suite"
  [pause]="localhost/mlops/pause:$pause_version"
)
declare -A file=(
  [base]=debian-python.oci.tar
  [project]=mlops-operator.oci.tar
  [router]=nginx-unprivileged.oci.tar
  [pause]=pause.oci.tar
)
archive() { echo "$cache/${file[$1]}"; }

# --- stamps --------------------------------------------------------------------------------
sha() { sha256sum | cut -c1-16; }

# The files of the project image's build context, as .dockerignore admits them.
context_files() {
  (cd "$repo" && {
    printf '%s\n' Dockerfile .dockerignore pyproject.toml README.md hack/image-requirements.txt
    find operator model_server trainer \( -name __pycache__ -o -name '*.egg-info' \
      -o -name .mypy_cache -o -name .pytest_cache -o -name .ruff_cache \) -prune \
      -o -type f ! -name '*.pyc' -print
  } | LC_ALL=C sort)
}

stamp() {
  local script
  script=$(sha <"$self")
  case "$1" in
    base) echo "base $script $suite" | sha ;;
    router) { echo "router $script $suite" && cat "$here/router/nginx.conf"; } | sha ;;
    pause) echo "pause $script $kube_version $pause_version" | sha ;;
    project)
      {
        echo "project $script $(stamp base) $version"
        (cd "$repo" && context_files | xargs -d '\n' sha256sum)
      } | sha
      ;;
    *) echo "unknown image: $1" >&2 && return 2 ;;
  esac
}

# Without the Dockerfile's dependency layer: a change of these drops buildah's layer cache.
deps_stamp() {
  { stamp base && cat "$repo/Dockerfile" "$repo/hack/image-requirements.txt"; } | sha
}

fresh() { [ -s "$(archive "$1")" ] && [ "$(cat "$cache/stamps/$1" 2>/dev/null)" = "$(stamp "$1")" ]; }

# --- tools ---------------------------------------------------------------------------------
ensure_tools() {
  if [ "$(id -u)" != 0 ]; then
    echo "images: run as root (mmdebstrap --mode=root and buildah's storage need it)" >&2
    exit 1
  fi
  local need=()
  command -v buildah >/dev/null || need+=(buildah)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  command -v gcc >/dev/null || need+=(gcc)
  [ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(gcc -print-file-name=libc.a 2>/dev/null |
    grep /)" ] || need+=(libc6-dev)
  if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || {
      echo "images: please install ${need[*]}" >&2
      exit 1
    }
    echo "images: installing ${need[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  command -v go >/dev/null || {
    echo "images: the pause image needs Go (to fetch k8s.io/kubernetes $kube_version)" >&2
    exit 1
  }
}

# buildah with the cache's own storage; never the machine's default store.
bah() {
  nice -n 10 buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver vfs "$@"
}

# The Debian sources of the rootfs: MLOPS_DEBIAN_SOURCES (a sources.list or deb822 file),
# else this machine's own when it runs the same Debian release, else mmdebstrap's default.
debian_sources() {
  if [ -n "${MLOPS_DEBIAN_SOURCES:-}" ]; then
    echo "$MLOPS_DEBIAN_SOURCES"
    return
  fi
  # shellcheck disable=SC1091
  if [ "$(. /etc/os-release && echo "$ID $VERSION_CODENAME")" = "debian $suite" ]; then
    local f
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
      [ -s "$f" ] && echo "$f" && return
    done
  fi
}

# mmdebstrap <variant> <packages> <out.tar> [hooks...]: a rootfs without docs, man pages,
# locales or setuid bits (the Pods run with allowPrivilegeEscalation: false anyway).
rootfs() {
  local variant=$1 packages=$2 out=$3
  shift 3
  local sources
  sources=$(debian_sources)
  nice -n 10 mmdebstrap --mode=root --variant="$variant" --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$@" \
    --customize-hook='chroot "$1" find / -xdev -type f -perm /6000 -exec chmod ug-s {} +' \
    --customize-hook='rm -f "$1"/var/log/*.log "$1"/var/log/apt/*.log' \
    "$suite" "$out" ${sources:+"$sources"}
}

labels() {
  printf -- '--label\norg.opencontainers.image.%s\n' "title=$1" "description=$2" \
    "version=$3" "licenses=$4"
}

# Commits a rootfs tarball as an image (buildah from scratch + add).
commit_rootfs() {
  local name=$1 tar=$2 c
  shift 2
  c=$(bah from scratch)
  bah add "$c" "$tar" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 "$@" "$c"
  bah commit --rm -q "$c" "${ref[$name]}" >/dev/null
}

# --- the images ----------------------------------------------------------------------------
build_base() {
  rootfs minbase python3,python3-venv,ca-certificates "$work/rootfs.tar"
  local l
  mapfile -t l < <(labels debian-python "Debian $suite with Python 3 (mmdebstrap)" "$suite" \
    "Various")
  commit_rootfs base "$work/rootfs.tar" --cmd '["python3"]' "${l[@]}"
}

build_router() {
  rootfs essential nginx "$work/rootfs.tar" \
    --customize-hook='echo "nginx:x:101:101:nginx:/nonexistent:/usr/sbin/nologin" >>"$1/etc/passwd"' \
    --customize-hook='echo "nginx:x:101:" >>"$1/etc/group"' \
    --customize-hook='ln -sf /dev/stdout "$1/var/log/nginx/access.log"' \
    --customize-hook='ln -sf /dev/stderr "$1/var/log/nginx/error.log"' \
    --customize-hook="copy-in $here/router/nginx.conf /etc/nginx" \
    --customize-hook='chroot "$1" nginx -t'
  local l
  mapfile -t l < <(labels nginx-unprivileged "nginx from Debian $suite, unprivileged (port 8080)" \
    "$suite" "BSD-2-Clause")
  commit_rootfs router "$work/rootfs.tar" --user 101:101 --port 8080/tcp --workingdir / \
    --stop-signal SIGQUIT --cmd '["nginx", "-g", "daemon off;"]' "${l[@]}"
}

build_pause() {
  local dir tag c
  dir=$(cd "$repo/hack/k8s" && GOFLAGS=-mod=readonly GOTOOLCHAIN=${MLOPS_GOTOOLCHAIN:-auto} \
    go mod download -json k8s.io/kubernetes | awk -F'"' '/"Dir"/ {print $4}')/build/pause
  tag=$(awk '$1 == "TAG" && $2 == "?=" {print $3}' "$dir/Makefile")
  if [ "$tag" != "$pause_version" ]; then
    echo "images: k8s.io/kubernetes $kube_version has pause $tag; set pause_version=$tag in $self" >&2
    exit 1
  fi
  gcc -Os -Wall -Werror -static -DVERSION="v$pause_version-$kube_version" \
    -o "$work/pause" "$dir/linux/pause.c"
  strip "$work/pause"
  c=$(bah from scratch)
  bah copy "$c" "$work/pause" /pause >/dev/null
  local l
  mapfile -t l < <(labels pause "The Pod sandbox (Kubernetes $kube_version build/pause)" \
    "$pause_version" "Apache-2.0")
  bah config --user 65535:65535 --entrypoint '["/pause"]' "${l[@]}" "$c"
  bah commit --rm -q "$c" "${ref[pause]}" >/dev/null
}

# The machine's pip settings that reach PyPI (an index, a proxy's CA), as a pip.conf mounted
# into the build's RUN steps: nothing of it lands in the image (the build stage is discarded).
pip_volumes() {
  local pip=${MLOPS_PIP:-python3 -m pip} conf="$work/pip.conf" key value cert=""
  printf '[global]\n' >"$conf"
  for key in index-url extra-index-url trusted-host cert timeout default-timeout proxy; do
    # `pip config list` prints section.key='value' lines; the environment (:env:) wins.
    value=$($pip config list 2>/dev/null | awk -v k="$key" '{
        name = $0; sub(/=.*/, "", name); n = split(name, p, ".")
        if (p[n] != k || (found && p[1] != ":env:")) next
        v = $0; sub(/^[^=]*=/, "", v); gsub(/^'\''|'\''$/, "", v); found = 1
      } END {print v}')
    [ -n "$value" ] || continue
    if [ "$key" = cert ]; then
      [ -r "$value" ] || continue
      cert=$value value=/run/mlops-build/ca.pem
    fi
    printf '%s = %s\n' "$key" "$value" >>"$conf"
  done
  chmod 0600 "$conf"
  printf -- '-v\n%s:/etc/pip.conf:ro\n' "$conf"
  [ -z "$cert" ] || printf -- '-v\n%s:/run/mlops-build/ca.pem:ro\n' "$cert"
}

build_project() {
  bah inspect "${ref[base]}" >/dev/null 2>&1 ||
    bah pull -q "oci-archive:$(archive base)" >/dev/null
  local deps
  deps=$(deps_stamp)
  if [ "$(cat "$cache/stamps/.project-deps" 2>/dev/null)" != "$deps" ]; then
    bah rmi --prune >/dev/null 2>&1 || true # the old layer cache: it cannot be reused
  fi
  local v previous
  mapfile -t v < <(pip_volumes)
  previous=$(bah images -q "${ref[project]}" 2>/dev/null || true)
  (cd "$repo" && bah bud --isolation chroot --pull=never --layers "${v[@]}" \
    --build-arg PYTHON_IMAGE="${ref[base]}" --label "org.opencontainers.image.version=$version" \
    -t "${ref[project]}" .)
  # vfs keeps a full copy of every image: the one just replaced would stay as a dangling 1.4 GB.
  if [ -n "$previous" ] && [ "$previous" != "$(bah images -q "${ref[project]}")" ]; then
    bah rmi "$previous" >/dev/null 2>&1 || true
  fi
  echo "$deps" >"$cache/stamps/.project-deps"
}

build_one() {
  local name=$1 start out
  start=$(date +%s)
  work=$(mktemp -d "$cache/work.XXXXXX")
  out="$cache/logs/$name.log"
  echo "images: building ${ref[$name]} (log: $out)" >&2
  # In the background, so that `set -e` holds inside (it does not in an `if` or `||`).
  "build_$name" >"$out" 2>&1 &
  if ! wait $!; then
    tail -n 30 "$out" >&2
    rm -rf "$work"
    echo "images: building ${ref[$name]} failed; the whole log is $out" >&2
    exit 1
  fi
  rm -f "$(archive "$name").tmp"
  bah push -q "${ref[$name]}" "oci-archive:$(archive "$name").tmp:${ref[$name]}" >>"$out" 2>&1
  mv "$(archive "$name").tmp" "$(archive "$name")"
  rm -rf "$work"
  stamp "$name" >"$cache/stamps/$name"
  echo "images: built ${ref[$name]} in $(($(date +%s) - start))s:" \
    "$(du -m "$(archive "$name")" | cut -f1) MB archive" >&2
}

build_all() {
  mkdir -p "$cache/stamps" "$cache/logs"
  exec 9>"$cache/.lock"
  flock 9 # another checkout may be building: wait, then reuse what it built
  local name missing=()
  for name in "${images[@]}"; do fresh "$name" || missing+=("$name"); done
  [ ${#missing[@]} -eq 0 ] && return
  ensure_tools
  for name in "${missing[@]}"; do
    # The project image builds on the base: a rebuilt base rebuilds it (its stamp says so).
    if ! fresh "$name"; then build_one "$name"; fi
  done
}

case "${1:-build}" in
  build)
    build_all
    for name in "${images[@]}"; do archive "$name"; done
    ;;
  dir) echo "$cache" ;;
  paths) for name in "${images[@]}"; do archive "$name"; done ;;
  refs) for name in "${images[@]}"; do echo "${ref[$name]} $(archive "$name")"; done ;;
  status) for name in "${images[@]}"; do
    if fresh "$name"; then echo "$name fresh"; else echo "$name stale"; fi
  done ;;
  stamp) stamp "${2:?usage: $0 stamp base|project|router|pause}" ;;
  import)
    ctr=${2:?usage: $0 import <ctr binary> <containerd address>}
    address=${3:?usage: $0 import <ctr binary> <containerd address>}
    build_all
    for name in project router pause; do
      "$ctr" --address "$address" --namespace k8s.io images import "$(archive "$name")"
    done
    ;;
  prune)
    bah rm --all >/dev/null
    bah rmi --prune
    rm -f "$cache/stamps/.project-deps"
    ;;
  *) echo "usage: $0 [build|dir|paths|refs|status|stamp <image>|import <ctr> <address>|prune]" >&2 && exit 2 ;;
esac
