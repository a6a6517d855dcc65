# Thin wrappers. On a fresh machine with Python 3.11 and make, `make run` and `make test`
# install everything first: uv into .tools/, then the locked workspace into .venv/.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
UV_VERSION := 0.13.8
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: install run stop demo test test-pg test-browser rehearsal image test-image security lint format bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml shared/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(VENV)/.synced

run: install  ## start NATS and the four services on embedded defaults (Ctrl-C stops)
	$(VENV)/bin/python -m hc_common.devstack

stop: install  ## stop a `make run` started elsewhere (another terminal, a lost shell)
	$(VENV)/bin/python -m hc_common.devstack stop

demo: install  ## seed a running `make run` (a family, a venue with a sub-admin and a gate, health data) and print what to try
	$(VENV)/bin/python -m hc_common.demo

test: install  ## the whole suite on embedded defaults (PostgreSQL/NATS when TEST_DATABASE_URL_PREFIX/TEST_NATS_URL say so)
	$(VENV)/bin/pytest -m "not rehearsal and not image"

PG_TEST_PREFIX ?= postgresql://postgres@127.0.0.1:5432/hc_test_

test-pg: install  ## the suite against this machine's PostgreSQL and NATS, with the cluster rehearsal (the fuzzer and the browser tests run once, in `make test`)
	TEST_DATABASE_URL_PREFIX=$(PG_TEST_PREFIX) \
	TEST_NATS_URL=nats://127.0.0.1:4222 $(VENV)/bin/pytest -m "not fuzz and not image and not browser"

test-browser: install  ## the staff page in headless Chromium alone (Debian's chromium; screenshots under .run/browser-artifacts/latest/)
	$(VENV)/bin/pytest -s -m browser tests/browser

rehearsal: install  ## the production topology rehearsed alone: 3 NATS nodes, 2 replicas of each service, PostgreSQL
	TEST_DATABASE_URL_PREFIX=$(PG_TEST_PREFIX) $(VENV)/bin/pytest -s -m rehearsal tests/rehearsal

image: install  ## the container image, built with Podman (installed from Debian's packages when missing; root)
	bash deploy/image/build.sh

test-image: image  ## the image's smoke test: migrations and the four services from it, the scan slice
	TEST_DATABASE_URL_PREFIX=$(PG_TEST_PREFIX) $(VENV)/bin/pytest -s -m image tests/image

security: install  ## the security suite alone: races, hostile inputs, the API fuzzer
	$(VENV)/bin/pytest tests/security

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install  ## benchmarks; each prints its command, figures and ratio to its baseline
	$(VENV)/bin/python -m tests.bench

clean:
	rm -rf $(VENV) $(TOOLS) .run
