# The commands the README names; CI runs `make test`.
.PHONY: setup quickstart test lint typecheck control-plane node images binaries bench crds

VENV := .venv/bin

setup:
	hack/setup.sh

# Train two models, serve them behind nginx and canary the second one: on this machine.
quickstart:
	hack/setup.sh quickstart
	$(VENV)/mlops local up -f examples/quickstart --traffic 20

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/lint-imports

typecheck: setup
	$(VENV)/mypy

# etcd, kube-apiserver, ... built from Go modules once per machine (docs/testing-cluster.md).
control-plane:
	hack/k8s/build.sh >/dev/null

# containerd, CNI plugins, CoreDNS, crictl and the sandbox image for the real test node
# (kubelet and kube-proxy come with the control plane); docs/testing-cluster.md#the-real-node.
node:
	hack/node/build.sh >/dev/null

# The project, router and pause images, built without a registry (docs/testing-cluster.md).
images:
	hack/images/build.sh >/dev/null

# All of them before the tests, the images build (mostly downloads) beside the Go builds
# (mostly compiling), which saves minutes on a fresh machine.
binaries:
	hack/images/build.sh >/dev/null & images=$$!; \
	hack/k8s/build.sh >/dev/null && hack/node/build.sh >/dev/null; go=$$?; \
	wait $$images; images=$$?; [ $$go = 0 ] && [ $$images = 0 ]

test: lint typecheck binaries
	$(VENV)/pytest

# Regenerate everything derived from the API models: crds/, the chart's copy, docs/api.md, ...
crds: setup
	hack/sync-generated.sh

bench:
	hack/setup.sh bench
	$(VENV)/python -m benchmarks

# The end-to-end quickstart on kind (needs Docker, kind, kubectl, helm; docs/install.md#kind).
.PHONY: kind-up kind-quickstart kind-down
kind-up:
	hack/kind-up.sh

kind-quickstart:
	hack/kind-quickstart.sh

kind-down:
	hack/kind-down.sh
