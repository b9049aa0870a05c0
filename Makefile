# `make dev` runs the product on embedded PostgreSQL and Redis; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Node tooling (official Socket.IO client for the interop test, bare socket.io for the bench
# baseline), installed from package-lock.json when node_modules is missing or the lock changed.
NODE_STAMP := node_modules/.package-lock.json

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund

dev: $(STAMP)
	$(BIN)/replyhq serve --demo

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .replyhq-data bench/results
