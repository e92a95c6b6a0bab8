#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine; safe to run again.
#   .venv/            the Python environment (the package, editable, with its test extra)
#   system packages   nginx, prometheus, wrk (Debian/Ubuntu via apt-get, when missing);
#                     for the real test node (tests/node, Linux): iptables, conntrack, and
#                     gcc with a static libc (its pause image) and libseccomp-dev (runc)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the package and its test extra into .venv"
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi

need=()
tools=(nginx:nginx prometheus:prometheus wrk:wrk)
if [ "$(uname -s)" = Linux ]; then
  tools+=(iptables:iptables conntrack:conntrack gcc:gcc pkg-config:pkg-config
    /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev /usr/include/seccomp.h:libseccomp-dev)
fi
for tool in "${tools[@]}"; do
  have=${tool%%:*}
  if [ "${have#/}" != "$have" ]; then [ -e "$have" ] && continue; else command -v "$have" >/dev/null 2>&1 && continue; fi
  need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: please install ${need[*]} with your package manager (e.g. brew install nginx prometheus wrk)" >&2
    exit 1
  fi
fi

