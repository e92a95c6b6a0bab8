#!/usr/bin/env bash
# Installs what the project needs on a fresh machine; safe to run again.
#
#   hack/setup.sh quickstart   .venv (the package) and nginx: all `make quickstart` uses
#   hack/setup.sh [test]       also prometheus and chromium (component tests), the MLflow
#                              server in .venv-mlflow (hack/mlflow-server.txt) and, on Linux,
#                              what the real test node needs: iptables, conntrack, ipset (its
#                              NetworkPolicy enforcer, kube-router), gcc with a static libc
#                              (its pause image), pkg-config and libseccomp-dev (runc)
#   hack/setup.sh bench        also wrk (the serving benchmark)
#
# System packages come from apt-get when missing (Debian/Ubuntu, as root); elsewhere it says
# what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}
case "$mode" in quickstart | test | bench) ;; *) echo "usage: $0 [quickstart|test|bench]" >&2 && exit 2 ;; esac

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the package and its test extra into .venv (a minute or two on a new machine)"
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi

need=()
tools=(nginx:nginx)
if [ "$mode" != quickstart ]; then
  tools+=(prometheus:prometheus tmux:tmux chromium:chromium)
  if [ "$(uname -s)" = Linux ]; then
    tools+=(iptables:iptables conntrack:conntrack ipset:ipset gcc:gcc pkg-config:pkg-config
      /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev /usr/include/seccomp.h:libseccomp-dev)
  fi
fi
[ "$mode" != bench ] || tools+=(wrk:wrk)
for tool in "${tools[@]}"; do
  have=${tool%%:*}
  if [ "${have#/}" != "$have" ]; then [ -e "$have" ] && continue; else command -v "$have" >/dev/null 2>&1 && continue; fi
  need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]} with apt-get (for $mode)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: $mode needs ${need[*]}: install them with your package manager (e.g. brew install ${need[*]})" >&2
    exit 1
  fi
fi

# The MLflow tracking server of the component tests: full mlflow caps pyarrow below ours, so
# it gets a venv of its own (the project's .venv has only the client, mlflow-skinny).
if [ "$mode" != quickstart ]; then
  mlflow_stamp=.venv-mlflow/.installed-$(sha256sum hack/mlflow-server.txt | cut -c1-16)
  if [ ! -f "$mlflow_stamp" ]; then
    echo "setup: installing the MLflow tracking server into .venv-mlflow (tests only)"
    [ -x .venv-mlflow/bin/python ] || "$PYTHON" -m venv .venv-mlflow
    .venv-mlflow/bin/pip install --quiet --upgrade pip
    .venv-mlflow/bin/pip install --quiet -r hack/mlflow-server.txt
    rm -f .venv-mlflow/.installed-* && touch "$mlflow_stamp"
  fi
fi
