# `make dev` runs the product on embedded PostgreSQL and Redis; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint audit bench clean web web-test sdk-js

# The dashboard and messenger (web/, TypeScript) are built into src/replyhq/static/ when their
# sources, or the API schema they are typed against, change. Serving them needs no Node.
WEB_STAMPS := web/.stamps
WEB_DEPS := $(WEB_STAMPS)/npm
API_TYPES := $(WEB_STAMPS)/api
WEB_BUILT := src/replyhq/static/.built
# The messenger runs on the JavaScript SDK, compiled from sdk/js/src into widget.js (a Vite
# alias: nothing of sdk/js needs installing or building first), so its sources count too.
WEB_SOURCES := $(shell find web/src web/index.html sdk/js/src -type f 2>/dev/null) \
	web/package.json web/package-lock.json web/tsconfig.json web/vite.config.ts web/vite.widget.config.ts
PY_SOURCES := $(shell find src/replyhq -name '*.py' -not -path '*/migrations/*' 2>/dev/null)

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

# The JavaScript SDK (sdk/js, @replyhq/sdk): installed from its own lock file and built to
# sdk/js/dist (ESM, CommonJS, types); tests/test_sdk_js.py runs it against a live server.
SDK_JS_DEPS := sdk/js/node_modules/.package-lock.json
SDK_JS_BUILT := sdk/js/dist/index.js

$(SDK_JS_DEPS): sdk/js/package.json sdk/js/package-lock.json
	cd sdk/js && npm ci --no-audit --no-fund --loglevel=error

$(SDK_JS_BUILT): $(SDK_JS_DEPS) $(shell find sdk/js/src sdk/js/scripts -type f 2>/dev/null) sdk/js/tsconfig.json
	cd sdk/js && npm run build --silent

sdk-js: $(SDK_JS_BUILT)

# The Python SDK's wheel (sdk/python, replyhq-sdk), which the server hands out at
# /sdk/python/<wheel> so that the dashboard's Python quickstart installs it from the customer's
# own server with pip. Built with the venv's pinned setuptools, offline.
SDK_PY_DIR := src/replyhq/static/sdk
SDK_PY_BUILT := $(SDK_PY_DIR)/.built

$(SDK_PY_BUILT): $(STAMP) scripts/build_python_sdk.py sdk/python/pyproject.toml $(shell find sdk/python/src -type f -not -name '*.pyc' 2>/dev/null)
	$(BIN)/python scripts/build_python_sdk.py $(SDK_PY_DIR) >/dev/null
	touch $@

$(WEB_DEPS): web/package.json web/package-lock.json
	mkdir -p $(WEB_STAMPS)
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The typed API client follows the live OpenAPI schema (rewritten only when it changed).
$(API_TYPES): $(STAMP) $(WEB_DEPS) $(PY_SOURCES)
	$(BIN)/python web/scripts/dump_openapi.py web/openapi.json
	cd web && npx openapi-typescript openapi.json -o .schema.tmp.d.ts --silent && \
		{ cmp -s .schema.tmp.d.ts src/api/schema.d.ts && rm .schema.tmp.d.ts || mv .schema.tmp.d.ts src/api/schema.d.ts; }
	touch $@

$(WEB_BUILT): $(WEB_DEPS) $(API_TYPES) $(WEB_SOURCES)
	cd web && npm run build --silent
	touch $@

web: $(WEB_BUILT)

web-test: $(WEB_DEPS)
	cd web && npx vitest run

dev: $(STAMP) $(WEB_BUILT) $(SDK_PY_BUILT)
	$(BIN)/replyhq serve --demo

# The browser tests drive Debian's Chromium (Playwright never downloads a browser).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: $(CHROMIUM) is missing (sudo apt-get install chromium); browser tests will be skipped"; fi

test: $(STAMP) $(NODE_STAMP) $(WEB_BUILT) $(SDK_PY_BUILT) web-test $(SDK_JS_BUILT) $(CHROMIUM)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts sdk/python
	$(BIN)/ruff format --check src tests bench scripts sdk/python
	$(BIN)/mypy

# The security audit: lint (ruff's security rules, mypy strict), schemathesis against a live
# server with every caller kind's credentials (no 5xx), then the dependencies' known
# vulnerabilities (skipped, saying so, where their databases are unreachable).
audit: lint $(NODE_STAMP) $(WEB_DEPS)
	$(BIN)/pytest -m audit tests/audit
	$(BIN)/python scripts/audit_deps.py

bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .replyhq-data bench/results web/node_modules $(WEB_STAMPS) src/replyhq/static/dashboard src/replyhq/static/widget.js $(WEB_BUILT) $(SDK_PY_DIR)
