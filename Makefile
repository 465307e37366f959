# deptflow — the two commands: `make run` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What each target installed, rebuilt when pyproject.toml changes: `run` needs only the project,
# the tests, lint and benchmarks its `dev` extra as well.
INSTALLED := $(VENV)/.installed-run
INSTALLED_DEV := $(VENV)/.installed-dev
NODE_MODULES := web/node_modules/.package-lock.json
VENDOR := web/static/vendor/.copied
HOST ?= 127.0.0.1
PORT ?= 5000
# the tests run on two processes (pytest-xdist): each has its own databases, servers and browser
PYTEST_ARGS ?= -n 2

.PHONY: run test setup lint bench chromium slapd clean

# The database: $DEPTFLOW_DATABASE_URL, else deptflow.sqlite3 in $DEPTFLOW_DATA_DIR or ~/.local/share/deptflow.
run: $(INSTALLED) $(VENDOR)
	$(BIN)/deptflow init --demo
	$(BIN)/deptflow serve --demo --host $(HOST) --port $(PORT)

test: setup chromium slapd
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

# Everything the tests need (but chromium): the project with its dev extra, the browser libraries.
setup: $(INSTALLED_DEV) $(VENDOR)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(INSTALLED_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(INSTALLED)

$(NODE_MODULES): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# The browser libraries come from npm; only their dist files are served. bpmnlint and its bpmn-js
# integration have no browser build: esbuild bundles them with the rules that web/lint/bpmnlint.js enables.
$(VENDOR): $(NODE_MODULES) Makefile $(wildcard web/lint/*.js)
	rm -rf web/static/vendor && mkdir -p web/static/vendor
	cp web/node_modules/@picocss/pico/css/pico.min.css web/static/vendor/
	mkdir -p web/static/vendor/bpmn
	cp -r web/node_modules/camunda-bpmn-js/dist/assets/. web/static/vendor/bpmn/
	cp web/node_modules/camunda-bpmn-js/dist/camunda-platform-navigated-viewer.production.min.js web/static/vendor/bpmn/
	cp web/node_modules/camunda-bpmn-js/dist/camunda-platform-modeler.production.min.js web/static/vendor/bpmn/
	cp web/node_modules/bpmn-js-bpmnlint/dist/assets/css/bpmn-js-bpmnlint.css web/static/vendor/bpmn/
	mkdir -p web/static/vendor/dmn
	cp -r web/node_modules/camunda-dmn-js/dist/assets/. web/static/vendor/dmn/
	cp web/node_modules/camunda-dmn-js/dist/camunda-platform-modeler.production.min.js web/static/vendor/dmn/
	cp web/node_modules/chart.js/dist/chart.umd.min.js web/static/vendor/
	mkdir -p web/static/vendor/swagger-ui
	cp web/node_modules/swagger-ui-dist/swagger-ui-bundle.js web/node_modules/swagger-ui-dist/swagger-ui.css \
	  web/static/vendor/swagger-ui/
	web/node_modules/.bin/esbuild web/lint/bpmnlint.js --bundle --minify --format=iife --global-name=DeptflowLint \
	  --target=es2020 --log-level=warning --outfile=web/static/vendor/bpmn/deptflow-bpmnlint.min.js
	touch $@

# Browser tests drive Debian's chromium; install it when it is missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Directory tests start Debian's OpenLDAP server (slapd, slapadd, slaptest) of their own; install it when
# it is missing. Its package's own service is not used (the tests run slapd with their own configuration).
slapd:
	@test -x /usr/sbin/slapd || command -v slapd >/dev/null 2>&1 || { \
	  echo "installing Debian slapd"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd >/dev/null; }

lint: $(INSTALLED_DEV)
	$(BIN)/ruff check .

bench: setup
	@for f in tests/perf/bench_*.py; do $(BIN)/python $$f; done

# Leaves the database alone: it is not in the checkout (see `run`).
clean:
	rm -rf $(VENV) web/node_modules web/static/vendor
