# lepton-ledger. Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Every step is idempotent: stamps record what is installed, so a second run installs nothing.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# The project's own anvil/forge/solhint (npm) and brownie (venv) come first on PATH; the solc-js CLI in
# .toolchain/ is the compiler py-solc-x (brownie) finds, so nothing is ever downloaded from a solc mirror.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export SOLCX_BINARY_PATH := $(CURDIR)/.toolchain
# Plain pytest must not load brownie's plugin (it would compile and start a chain for Python unit tests).
PYTEST := $(PY) -m pytest -p no:pytest-brownie
SOL_SOURCES := $(shell find contracts interfaces -name '*.sol' 2>/dev/null)

.PHONY: help setup build demo test system-deps test-python api-fuzz test-contracts test-forge coverage lint bench-gas clean

help:
	@echo "make demo   - set everything up, then run the main job on embedded defaults"
	@echo "make test   - set everything up, then run every test (Python, brownie, forge, coverage, lint)"
	@echo "make build  - install the toolchains and compile the contracts"
	@echo "make lint   - ruff, import-linter and mypy over the Python; solhint and slither over the contracts"
	@echo "make bench-gas PARTNERS=100 - gas of every operation and per anchored update"

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

build: setup build/.compiled

build/.compiled: $(SOL_SOURCES) brownie-config.yaml .toolchain/solc-v0.8.28 node_modules/.installed
	brownie compile
	touch $@

demo: build
	$(VENV)/bin/lepton-ledger demo --out demo-out

test: build test-python api-fuzz test-contracts test-forge coverage lint

# Debian's ipfs_cid is the independent reference the storage tests compare CIDs with.
# Debian packages the tests use: ipfs_cid (the reference CID tool) and chromium (the HTML report opens in it).
SYSTEM_PACKAGES := ipfs-cid chromium
system-deps:
	@command -v ipfs_cid >/dev/null && command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] || { echo "missing: run 'sudo apt-get install -y $(SYSTEM_PACKAGES)' (or make system-deps as root)" >&2; exit 1; }; \
	  apt-get install -y -q $(SYSTEM_PACKAGES) || { apt-get update -q && apt-get install -y -q $(SYSTEM_PACKAGES); }; }

test-python: build system-deps
	$(PYTEST) tests --ignore=tests/contracts -q

# Schemathesis against a running `serve` on a fresh demo folder (its own venv; about 3 min): after the Python tests.
api-fuzz: build
	bash .ci/api-fuzz

test-contracts: build
	brownie test -q

test-forge: setup
	forge test

coverage: setup
	bash .ci/coverage

lint: setup
	bash .ci/lint-python
	bash .ci/lint

bench-gas: build
	$(PY) bench/gas.py --partners $(or $(PARTNERS),100)

clean:
	rm -rf build reports demo-out .pytest_cache .hypothesis
