#!/usr/bin/env bash
# Regenerates everything packaging derives from the API models and the chart, in order:
#   crds/ -> charts/mlops-operator/files/crds/ -> deploy/kustomize/;  docs/api.md;
#   deploy/argocd/argocd-cm.yaml (from deploy/argocd/health/)
# tests/packaging fails with a pointer here when any of them is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/mlops crds --output-dir crds
.venv/bin/mlops crds --output-dir charts/mlops-operator/files/crds
.venv/bin/python -m mlops_operator.apidocs --output docs/api.md
echo "wrote docs/api.md"
.venv/bin/python hack/gen-kustomize.py
.venv/bin/python hack/gen-argocd-cm.py
