// Pins the CRD sources hack/k8s/build.sh copies into the cache (nothing is compiled here):
// the Gateway API standard install (config/crd/standard) and Istio's CRDs
// (kubernetes/customresourcedefinitions.gen.yaml).
module mlops.dev/hack/k8s/crds

go 1.26.0

require (
	istio.io/api v1.31.1
	sigs.k8s.io/gateway-api v1.6.3
)
