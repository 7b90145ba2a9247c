# `make run`, `make test` and `make bench` each create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch's CPU-only wheel set is pinned where this machine serves it from disk; any torch>=2.1 works
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# the offline MNIST copy beside the checkout where there is one; else data/ (downloaded on first use)
export SNN_STUDY_DATA ?= $(if $(wildcard ../shared/data/MNIST/raw),$(abspath ../shared/data),$(abspath data))

.PHONY: run test lint bench clean

$(BIN)/snn-study: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS) || $(BIN)/python -m pip install -q "torch>=2.1" torchvision
	$(BIN)/python -m pip install -q -e ".[dev,postgres,slurm,metrics]"
	touch $@

run: $(BIN)/snn-study
	$(BIN)/snn-study run --preset quick

test: lint
	$(BIN)/python -m pytest

# lint and import order (ruff), types (mypy), the packages' dependency order (import-linter; pyproject.toml)
lint: $(BIN)/snn-study
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(BIN)/snn-study
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs *.egg-info
