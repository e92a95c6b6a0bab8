#!/usr/bin/env bash
# The quickstart on the kind cluster of hack/kind-up.sh: train two models, serve the first,
# canary the second while a load Pod sends predictions with feedback, and wait for the
# promotion. The steps are hack/quickstart.sh's, the same the real-node tests run in CI.
#
#   hack/kind-quickstart.sh    (make kind-quickstart)
#
# Environment: CLUSTER (mlops), WATCH: the namespace of the examples (default), TIMEOUT (15m).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-mlops}
export KUBECTL="kubectl --context kind-$CLUSTER"
hack/quickstart.sh apply trained serving load promoted unload
printf '\nPromoted. Next: hack/quickstart.sh rollback (with KUBECTL="%s");\n' "$KUBECTL"
printf 'clean up with hack/kind-down.sh (make kind-down).\n'
