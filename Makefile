# Two commands on a fresh machine: `make demo` (main job on embedded defaults) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup setup-dev clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Core only (store, mixing).
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# The demo trains and evaluates a tiny model: the CPU torch build first, then the `train` extra.
$(VENV)/.train: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[train,report,view]"
	touch $@ $(VENV)/.core

# The CPU torch build first, so the open-ended `train` extra is already satisfied and nothing large is downloaded.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[train,dev]"
	touch $@ $(VENV)/.core $(VENV)/.train

setup: $(VENV)/.core
setup-dev: $(VENV)/.dev

# Store + three mixtures (curate demo), then the demo study: mix, train a tiny model, evaluate, report.
demo: $(VENV)/.train
	$(BIN)/curate demo --store demo-out/store --out demo-out
	$(BIN)/curate study run demo

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-out curate-store
