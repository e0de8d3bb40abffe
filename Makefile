# bountytree: two commands on a fresh machine, `make demo` and `make test`.
# Every target installs what it needs first (`make setup`, idempotent).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The app's wallet component, an npm project of its own (see its rules below).
WALLET_UI := app/wallet/frontend
PYTHON3 ?= python3
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
# py-solc-x (brownie's compiler driver) takes the solc-js adapter here for a native solc.
export SOLCX_BINARY_PATH := $(CURDIR)/toolchain/solcx
# Test workers: two cores here; CI may set it.
JOBS ?= 2

.PHONY: setup chromium compile lint test test-contracts test-python test-e2e-anvil test-contracts-anvil demo bench bench-gas bench-storage bench-trainer bench-oracle bench-e2e bench-scale bench-lineage bench-serve bench-private bench-chain screenshots clean bench-cli bench-http-servers

setup: $(VENV)/.installed node_modules/.installed build/.compiled chromium $(WALLET_UI)/build/index.html

# Debian's Chromium for the one browser test (and `make screenshots`), from apt.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Ganache, solc-js, OpenZeppelin and js-ipfs (the IPFS daemon of `up --store ipfs` and of the
# tests; three of its dependencies pinned by `overrides` in package.json), from the lockfile.
# --prefer-offline takes what npm's cache holds without asking the registry.
node_modules/.installed: package.json package-lock.json
	npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

# The app's wallet component (app/wallet/frontend): its own lockfile, bundled by vite into
# build/ (served by the app; nothing is fetched at run time); its playwright-core drives Chromium
# in the browser test.
$(WALLET_UI)/node_modules/.installed: $(WALLET_UI)/package.json $(WALLET_UI)/package-lock.json
	cd $(WALLET_UI) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

$(WALLET_UI)/build/index.html: $(WALLET_UI)/node_modules/.installed $(WALLET_UI)/index.html $(WALLET_UI)/vite.config.js $(wildcard $(WALLET_UI)/src/*)
	cd $(WALLET_UI) && npm run --silent build

build/.compiled: $(VENV)/.installed node_modules/.installed $(wildcard contracts/*.sol contracts/*/*.sol) brownie-config.yaml
	$(VENV)/bin/brownie compile
	touch $@

compile: setup

# ruff (lint and format), the import layers (pyproject's [tool.importlinter]) and mypy (strict on
# the core). .ci/run calls it before the tests.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy bountytree trainer demo oracle custodian app

# Contract tests (brownie, their own Ganache) and Python tests (one shared Ganache per
# session) run side by side; both must pass.
test: setup
	@mkdir -p .bountytree; status=0; \
	  ( $(MAKE) --no-print-directory test-contracts > .bountytree/test-contracts.log 2>&1 ) & cpid=$$!; \
	  $(MAKE) --no-print-directory test-python || status=1; \
	  wait $$cpid || status=1; \
	  echo "──── contract tests (brownie) ────"; tail -n 40 .bountytree/test-contracts.log; \
	  exit $$status

# A free port for a test chain, chosen at run time: two runs on one host never collide.
FREE_PORT = $$($(PY) -c 'from bountytree.processes import free_port; print(free_port())')

test-contracts: setup
	BROWNIE_GANACHE_PORT=$(FREE_PORT) $(VENV)/bin/brownie test tests/contracts --network ganache-cli

test-python: setup
	$(PY) -m pytest tests -p no:pytest-brownie -n $(JOBS) --ignore=tests/contracts

# The same tests on anvil, the second local chain (npm installs it with the rest): the
# end-to-end tests (.ci/run runs them after `make test`), and the contract tests on brownie's
# `anvil` network. BOUNTYTREE_TEST_CHAIN picks the chain of a pytest session.
test-e2e-anvil: setup
	BOUNTYTREE_TEST_CHAIN=anvil $(PY) -m pytest tests/e2e -p no:pytest-brownie -n $(JOBS)

test-contracts-anvil: setup
	BROWNIE_ANVIL_PORT=$(FREE_PORT) $(VENV)/bin/brownie test tests/contracts --network anvil

# The whole marketplace on this machine: Ganache (state in .bountytree/chain, so a second run
# resumes it), contracts, oracle, app, and the scripted market; the app stays up until Ctrl-C.
demo: setup
	$(VENV)/bin/bountytree up --demo

bench: bench-gas bench-storage bench-trainer bench-oracle bench-e2e bench-scale bench-lineage bench-serve bench-cli bench-private bench-chain bench-http-servers
	$(PY) -m bench.results

bench-gas: setup
	BROWNIE_GANACHE_PORT=$(FREE_PORT) $(VENV)/bin/brownie run scripts/bench_gas.py --network ganache-cli

bench-storage: setup
	@mkdir -p .bountytree
	$(PY) -m bench.storage

bench-trainer: setup
	$(PY) -m bench.trainer

bench-oracle: setup
	$(PY) -m bench.oracle

bench-e2e: setup
	$(PY) -m bench.e2e

bench-scale: setup
	$(PY) -m bench.scale

# Private models: scoring and training on secret shares against public scoring, and the hand-over.
bench-private: setup
	$(PY) -m bench.private

bench-cli: setup
	$(PY) -m bench.cli

# The local chain: sends left unmined by Ganache, with the block clock as it was and as it is.
bench-chain: setup
	$(PY) -m bench.chain

# The HTTP server candidates beside uvicorn live in .bench-http/, never in the product's venv.
bench-http-servers: setup
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --target .bench-http hypercorn==0.18.0 granian==2.8.7 h2==4.4.1 hpack==4.2.0 hyperframe==6.1.0 priority==2.0.0 wsproto==1.3.2
	$(PY) -m bench.http_servers

bench-lineage: setup
	$(PY) -m bench.lineage

# `bountytree serve` under load (p50/p99, requests/s, batching on and off) beside a plain
# forward call, then beside MLServer; writes bench/serve.md, bench/mlserver.md and results.md.
bench-serve: setup .bench-mlserver/.installed
	$(PY) -m bench.serve
	$(PY) -m bench.mlserver
	$(PY) -m bench.results

# MLServer, the reference server `serve` is measured against, in an environment of its own
# (bench/mlserver-requirements.txt), never the product's venv.
.bench-mlserver/.installed: bench/mlserver-requirements.txt
	test -x .bench-mlserver/bin/python || $(PYTHON3) -m venv .bench-mlserver
	.bench-mlserver/bin/python -m pip install --quiet --disable-pip-version-check -r bench/mlserver-requirements.txt
	touch $@

# Screenshots of the task page (tree, payouts) from the demo market, into docs/.
screenshots: setup
	$(PY) app/screenshots.py

clean:
	rm -rf build .bountytree
