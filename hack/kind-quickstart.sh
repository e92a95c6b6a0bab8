#!/usr/bin/env bash
# The quickstart on the kind cluster of hack/kind-up.sh: train two models, serve the first,
# canary the second while a load Pod sends predictions, and wait for the promotion.
#
#   hack/kind-quickstart.sh    (make kind-quickstart)
#
# Environment: CLUSTER (mlops), WATCH: the namespace of the examples (default), TIMEOUT (15m).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-mlops}
NS=${WATCH:-default}
TIMEOUT=${TIMEOUT:-15m}
VERSION=$(awk -F'"' '/^appVersion:/ {print $2}' charts/mlops-operator/Chart.yaml)
k() { kubectl --context "kind-$CLUSTER" --namespace "$NS" "$@"; }
step() { printf '\n==> %s\n' "$*"; }

step "1/5 apply examples/quickstart (two TrainingJobs, one ModelDeployment)"
k apply -f examples/quickstart/

step "2/5 wait for both models to be trained"
k wait --for=jsonpath='{.status.phase}'=Succeeded tj/cancer-v1 tj/cancer-v2 --timeout "$TIMEOUT"
k get tj

step "3/5 wait for the ModelDeployment to serve"
until url=$(k get mdep cancer -o jsonpath='{.status.url}') && [ -n "$url" ]; do sleep 5; done
echo "serving at $url"

step "4/5 send predictions (the canary analysis needs requests to judge the canary)"
# The project's own image has Python and scikit-learn's bundled breast cancer data.
k delete pod cancer-load --ignore-not-found --wait
k run cancer-load --image="mlops-operator:$VERSION" --image-pull-policy=IfNotPresent \
  --restart=Never --labels=app=cancer-load --env="URL=$url/v2/models/cancer/infer" \
  --command -- python -c '
import json, os, time, urllib.request
from sklearn.datasets import load_breast_cancer
rows = load_breast_cancer().data[:64].tolist()
url, deadline, sent = os.environ["URL"], time.monotonic() + 1200, 0
while time.monotonic() < deadline:
    row = rows[sent % len(rows)]
    body = {"inputs": [{"name": "x", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=5).read()
    except Exception as error:
        print("request failed:", error, flush=True)
    sent += 1
    time.sleep(0.1)
'

step "5/5 wait for the canary to be promoted"
k get mdep cancer
k wait --for=jsonpath='{.status.phase}'=Promoted mdep/cancer --timeout "$TIMEOUT"
k get mdep cancer
k delete pod cancer-load --wait=false
printf '\nPromoted. Clean up with hack/kind-down.sh (make kind-down).\n'
