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
