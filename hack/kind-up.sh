#!/usr/bin/env bash
# Creates the kind cluster of kind-config.yaml, builds the image, loads it into the cluster and
# installs the Helm chart. Needs docker, kind, kubectl and helm on PATH. Safe to run again:
# an existing cluster is reused and the release is upgraded.
#
#   hack/kind-up.sh            (make kind-up)
#
# Environment: CLUSTER (default mlops, as kind-config.yaml names it), NAMESPACE of the operator
# (mlops-system), WATCH: the namespace it watches, where the quickstart runs (default).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-mlops}
NAMESPACE=${NAMESPACE:-mlops-system}
# The namespace the quickstart runs in: the operator watches it, the model store's claim is there.
WATCH=${WATCH:-default}
VERSION=$(awk -F'"' '/^appVersion:/ {print $2}' charts/mlops-operator/Chart.yaml)
IMAGE=mlops-operator:$VERSION

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-up: $tool is not installed" >&2; exit 1; }
done

step() { printf '\n==> %s\n' "$*"; }

step "1/4 cluster $CLUSTER (kind-config.yaml)"
if kind get clusters | grep -qx "$CLUSTER"; then
  echo "cluster $CLUSTER exists"
else
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "2/4 image $IMAGE (Dockerfile)"
docker build --tag "$IMAGE" .

step "3/4 load $IMAGE into the cluster's node"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "4/4 helm chart into namespace $NAMESPACE"
KUBECTL="kubectl --context kind-$CLUSTER" HELM="helm --kube-context kind-$CLUSTER" \
  NAMESPACE=$NAMESPACE WATCH=$WATCH IMAGE=$IMAGE PULL_POLICY=IfNotPresent hack/quickstart.sh install

printf '\nThe operator runs. Next: hack/kind-quickstart.sh (make kind-quickstart)\n'
