#!/usr/bin/env bash
# The quickstart's steps on a cluster, one sequence for every place that runs it:
# hack/kind-up.sh and hack/kind-quickstart.sh on kind, and the real-node tests
# (tests/node/test_quickstart.py, run by `make test`) on this machine's own node.
#
#   hack/quickstart.sh STEP...
#
#   install    helm upgrade --install the chart with the image; the operator's rollout; helm test
#   apply      kubectl apply -f examples/quickstart/ (two TrainingJobs, one ModelDeployment)
#   trained    wait for both TrainingJobs to succeed
#   serving    wait for the ModelDeployment to serve (its status.url)
#   load       a Pod of the project image sends predictions, each followed by its ground truth
#              as feedback, through the router Service (the canary analysis needs requests)
#   promoted   wait for the canary to be promoted
#   rollback   examples/rollback/ (a bad canary), its load, and wait for the rollback
#   unload     delete the load Pods
#   upgrade    helm upgrade with the same values (docs/install.md): the operator rolls out again
#   uninstall  helm uninstall: the CRDs and the model store's claims stay (docs/install.md)
#
# Environment: KUBECTL (kubectl) and HELM (helm), with their flags (context, kubeconfig);
# NAMESPACE of the operator (mlops-system); WATCH, the examples' namespace (default); RELEASE
# (mlops-operator); IMAGE (mlops-operator:<appVersion>); PULL_POLICY (IfNotPresent);
# ROUTER_IMAGE (empty: the operator's default); TIMEOUT (15m); VALUES, more helm flags for
# install and upgrade, one a line (e.g. --set-json=networkPolicy.prometheus.podSelector={...}).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(awk -F'"' '/^appVersion:/ {print $2}' charts/mlops-operator/Chart.yaml)
KUBECTL=${KUBECTL:-kubectl}
HELM=${HELM:-helm}
NAMESPACE=${NAMESPACE:-mlops-system}
WATCH=${WATCH:-default}
RELEASE=${RELEASE:-mlops-operator}
IMAGE=${IMAGE:-mlops-operator:$VERSION}
PULL_POLICY=${PULL_POLICY:-IfNotPresent}
ROUTER_IMAGE=${ROUTER_IMAGE:-}
TIMEOUT=${TIMEOUT:-15m}

k() { $KUBECTL --namespace "$WATCH" "$@"; }
step() { printf '\n==> %s\n' "$*"; }

helm_values() {
  local values=(--set "image.repository=${IMAGE%:*}" --set "image.tag=${IMAGE##*:}"
    --set "image.pullPolicy=$PULL_POLICY" --set-json "operator.watchNamespaces=[\"$WATCH\"]")
  [ -z "$ROUTER_IMAGE" ] || values+=(--set "operator.routerImage=$ROUTER_IMAGE")
  printf '%s\n' "${values[@]}"
  [ -z "${VALUES:-}" ] || printf '%s\n' "$VALUES"
}

install() {
  step "helm chart into namespace $NAMESPACE, watching $WATCH, image $IMAGE"
  local values
  mapfile -t values < <(helm_values)
  # The image was loaded, never pushed: IfNotPresent (or Never) finds it on the node. No
  # --wait: a WaitForFirstConsumer storage class binds the model store's claim only when a
  # Pod first mounts it.
  $HELM upgrade --install "$RELEASE" charts/mlops-operator \
    --namespace "$NAMESPACE" --create-namespace "${values[@]}"
  rollout
  $HELM test "$RELEASE" --namespace "$NAMESPACE" --timeout 2m
}

rollout() {
  $KUBECTL --namespace "$NAMESPACE" rollout status "deployment/$(fullname)" --timeout 3m
}

fullname() {
  if [ "$RELEASE" = mlops-operator ]; then echo mlops-operator; else echo "$RELEASE-mlops-operator"; fi
}

apply() {
  step "apply examples/quickstart (two TrainingJobs, one ModelDeployment) in $WATCH"
  k apply -f examples/quickstart/
}

trained() {
  step "wait for both models to be trained"
  k wait --for=jsonpath='{.status.phase}'=Succeeded tj/cancer-v1 tj/cancer-v2 --timeout "$TIMEOUT"
  k get tj
}

serving() {
  step "wait for the ModelDeployment to serve"
  local url deadline=$((SECONDS + 600))
  until url=$(k get mdep cancer -o jsonpath='{.status.url}') && [ -n "$url" ]; do
    [ $SECONDS -lt $deadline ] || { echo "no status.url after 10 minutes" >&2; return 1; }
    sleep 2
  done
  k wait --for=condition=Ready mdep/cancer --timeout "$TIMEOUT"
  echo "serving at $url"
}

# A Pod of the project image: rows of the dataset, each answer followed by its ground truth
# (POST .../feedback, with the token of the Secret <ModelDeployment>-feedback that the model
# servers ask for; the router finds the variant that answered), until deleted.
load() { # load <pod> <ModelDeployment> <dataset>
  local pod=$1 mdep=$2 dataset=$3 url token
  step "send predictions with feedback to $mdep (Pod $pod)"
  url=$(k get mdep "$mdep" -o jsonpath='{.status.url}')
  # The token reaches the Pod from the Secret, as it would reach a labelling job.
  token='{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "'"$mdep"'-feedback", "key": "token"}}}'
  k delete pod "$pod" --ignore-not-found --wait
  k run "$pod" --image="$IMAGE" --image-pull-policy="$PULL_POLICY" --restart=Never \
    --labels="app=$pod" --env="URL=$url" --env="DATASET=$dataset" --override-type=strategic \
    --overrides='{"spec": {"containers": [{"name": "'"$pod"'", "env": ['"$token"']}]}}' \
    --command -- python -c '
import json, os, time, urllib.request
from sklearn import datasets
data = getattr(datasets, "load_" + os.environ["DATASET"])()
rows, truths = data.data[:64].tolist(), data.target[:64].tolist()
url, sent, failed = os.environ["URL"], 0, 0
token = {"Authorization": "Bearer " + os.environ["TOKEN"]}
def post(path, body, headers={}):
    request = urllib.request.Request(url + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers, json.loads(response.read())
def body(row):
    return {"inputs": [{"name": "x", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
for attempt in range(60):  # a new Pod may start before the network plugin admits it
    try:
        post("/infer", body(rows[0]))
        break
    except OSError as error:
        print("waiting for the router:", error, flush=True)
        time.sleep(1)
while True:
    row, truth = rows[sent % len(rows)], truths[sent % len(rows)]
    try:
        _, answer = post("/infer", body(row))
        post("/feedback", {"id": answer["id"], "truth": [truth]}, token)
    except Exception as error:
        failed += 1
        print("request failed:", error, flush=True)
    sent += 1
    if sent % 100 == 0:
        print(f"sent {sent}, failed {failed}", flush=True)
    time.sleep(0.1)
'
  k wait --for=condition=Ready "pod/$pod" --timeout 3m
}

promoted() {
  step "wait for the canary to be promoted"
  k wait --for=jsonpath='{.status.phase}'=Promoted mdep/cancer --timeout "$TIMEOUT"
  step "wait for the promotion's hand-off: the stable servers take the promoted model, the canary's go"
  k wait --for=condition=Progressing=false mdep/cancer --timeout 5m
  k get mdep cancer
}

rollback() {
  step "examples/rollback: a canary worse than the stable model is rolled back"
  k apply -f examples/rollback/
  k wait --for=jsonpath='{.status.phase}'=Succeeded tj/wine-good tj/wine-bad --timeout "$TIMEOUT"
  local deadline=$((SECONDS + 600))
  until [ -n "$(k get mdep wine -o jsonpath='{.status.url}')" ]; do
    [ $SECONDS -lt $deadline ] || { echo "wine: no status.url after 10 minutes" >&2; return 1; }
    sleep 2
  done
  load wine-load wine wine
  k wait --for=jsonpath='{.status.phase}'=RolledBack mdep/wine --timeout "$TIMEOUT"
  k wait --for=condition=Degraded mdep/wine --timeout 1m
  k get mdep wine -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
}

unload() {
  k delete pod cancer-load wine-load --ignore-not-found --wait=false
}

upgrade() {
  step "helm upgrade (docs/install.md): the same values, the operator rolls out again"
  local values
  mapfile -t values < <(helm_values)
  $HELM upgrade "$RELEASE" charts/mlops-operator --namespace "$NAMESPACE" "${values[@]}" \
    --set-string "operator.podAnnotations.mlops\.dev/upgraded=$(date +%s)"
  rollout
}

uninstall() {
  step "helm uninstall: the CRDs and the model store's claims stay"
  $HELM uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout 2m
}

[ $# -gt 0 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d;s/^# \{0,1\}//'; exit 2; }
for s in "$@"; do
  case "$s" in
    install | apply | trained | serving | promoted | rollback | unload | upgrade | uninstall) "$s" ;;
    load) load cancer-load cancer breast_cancer ;;
    *) echo "quickstart: unknown step $s" >&2 && exit 2 ;;
  esac
done
