# Fundflow: `make run` and `make test` work on a fresh clone; they install what they need first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST := $(VENV)/bin/pytest
RUFF := $(VENV)/bin/ruff
MYPY := $(VENV)/bin/mypy
FUNDFLOW := $(VENV)/bin/fundflow
NPX := npx --no-install

VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: help setup compile test lint bench run cluster haproxy clean slither .venv node_modules

help:
	@echo "make setup    install the Python venv (.venv) and node_modules"
	@echo "make run      start a local chain, deploy, seed a demo, index and serve the API"
	@echo "make cluster  the same on PostgreSQL: REPLICAS=2 API replicas behind HAProxy, leader + standby indexer"
	@echo "make test     run the whole test suite"
	@echo "make lint     ruff check, ruff format --check, mypy"
	@echo "make compile  compile contracts/ with Hardhat (offline solc-js)"
	@echo "make bench    the benchmark suite (QUICK=1 for a small run); see docs/benchmarks.md"
	@echo "make slither  static analysis of the contracts (slither on the Hardhat build)"
	@echo "make clean    remove build outputs, caches and installed environments"

# Reinstalls only when pyproject.toml changes.
$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet -e '.[dev]'
	touch $@

# Reinstalls only when package-lock.json changes.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.venv: $(VENV_STAMP)
node_modules: $(NODE_STAMP)

setup: $(VENV_STAMP) $(NODE_STAMP)

compile: $(NODE_STAMP)
	$(NPX) hardhat compile

# The dashboard's browser tests drive Debian's Chromium through Playwright (no browser download); a CJK font
# makes the Chinese labels legible in their screenshots.
test: setup haproxy
	command -v chromium >/dev/null && fc-list :lang=zh | grep -q . || (apt-get update && apt-get install -y chromium fonts-wqy-zenhei)
	$(PYTEST)

lint: $(VENV_STAMP)
	$(RUFF) check .
	$(RUFF) format --check .
	$(MYPY) ledger api fundflow

# The whole suite (gas, writes, indexer, reads at 1M lots, verification, memory, anvil); QUICK=1 = small.
bench: setup
	$(PY) scripts/bench.py $(if $(QUICK),--quick,)

run: setup
	$(FUNDFLOW) up

# The cluster (and its tests) put Debian's HAProxy in front of the API replicas.
haproxy:
	test -x /usr/sbin/haproxy || command -v haproxy >/dev/null || (apt-get update && apt-get install -y haproxy)

# Needs a PostgreSQL server: FUNDFLOW_CLUSTER_DATABASE_URL (default postgres@127.0.0.1:5432); it creates a
# database of its own there and drops it on Ctrl-C.
cluster: setup haproxy
	$(FUNDFLOW) up --replicas $(or $(REPLICAS),2)

clean:
	rm -rf artifacts cache var test-artifacts .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -rf $(VENV) $(SLITHER_VENV) node_modules *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Static analysis of the contracts on the Hardhat build (slither needs no solc binary this way).
SLITHER_VENV := .venv-slither
slither: $(NODE_STAMP)
	test -x $(SLITHER_VENV)/bin/slither || (python3 -m venv $(SLITHER_VENV) && $(SLITHER_VENV)/bin/pip install --quiet slither-analyzer==0.11.6 crytic-compile==0.4.2)
	$(NPX) hardhat compile
	# timestamp and assembly: reviewed, see docs/security.md; any other finding fails the target.
	$(SLITHER_VENV)/bin/slither . --hardhat-ignore-compile --filter-paths node_modules --exclude timestamp,assembly
