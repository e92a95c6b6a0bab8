# The commands the README names; CI runs `make test`.
.PHONY: setup quickstart test lint typecheck unit bench crds

VENV := .venv/bin

setup:
	hack/setup.sh

quickstart: setup
	$(VENV)/mlops crds

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

typecheck: setup
	$(VENV)/mypy

test: lint typecheck
	$(VENV)/pytest

crds: setup
	$(VENV)/mlops crds --output-dir crds

bench: setup
	$(VENV)/python -m benchmarks

# The end-to-end quickstart on kind (needs Docker, kind, kubectl, helm; docs/install.md#kind).
.PHONY: kind-up kind-quickstart kind-down
kind-up:
	hack/kind-up.sh

kind-quickstart:
	hack/kind-quickstart.sh

kind-down:
	hack/kind-down.sh
