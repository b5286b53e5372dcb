# Retrainer: the local stack and the checks. The logic lives in include/retrainer_launcher/.
#   make run     set up, start Airflow + MLflow in the background, train once, print a summary
#   make stop    stop everything `make run` started
#   make reset   stop, then delete all local state (.airflow .mlflow data reports .dvc-remote)
#   make status  which processes run, their health, the URLs and the login
#   make up-distributed    the production topology of docker-compose.yaml on this machine's Postgres + Redis:
#                          CeleryExecutor, two Celery workers, MLflow server with basic auth (no containers)
#   make run-distributed   up-distributed, then train once and print a summary
#   make status-distributed / make down-distributed
#   make compose-config    validate docker-compose.yaml with `docker compose config` (needs a filled .env)
#   make test    the test suite (what CI runs); installs the browser for the UI tests first
#   make setup-browser  Debian's headless Chromium for the control-room browser tests (skipped if present)
#   make lint    ruff, including Airflow's AIR rules on dags/ and plugins/
#   make bench   every benchmark figure (over an hour, the machine to itself; latest.md gives the last run's time): bench/results/latest.md and latest.json
#   make bench-quick   the same figures at small sizes, under 5 minutes: bench/results/quick.md
#   make drift-demo  inject drift after the champion's day: drift report, drift-triggered retrain, tagged version

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter the venv is made from (the project needs Python 3.11).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.retrainer-setup
API_PORT ?= 8080
MLFLOW_PORT ?= 5000
# `stop`/`status` work without the venv: the launcher needs only the standard library for them.
STACK = $(if $(wildcard $(PY)),$(PY),PYTHONPATH=include $(PYTHON)) -m retrainer_launcher \
        --api-port $(API_PORT) --mlflow-port $(MLFLOW_PORT)

.PHONY: help setup setup-browser run stop status reset test screenshots lint bench bench-quick drift-demo up-distributed run-distributed \
        status-distributed down-distributed compose-config

help:
	@sed -n 's/^#   make/make/p' $(firstword $(MAKEFILE_LIST))

setup: $(STAMP)

# uv: from PATH, else as a module of $(PYTHON), else installed with pip --user
# (with --break-system-packages where the system Python refuses user installs, PEP 668).
$(STAMP): requirements.txt pyproject.toml
	@set -euo pipefail; \
	if uv --version >/dev/null 2>&1; then UV=uv; \
	else \
	  if ! "$(PYTHON)" -m uv --version >/dev/null 2>&1; then \
	    echo "uv not found: installing it with pip --user"; \
	    "$(PYTHON)" -m pip install --user --quiet uv \
	      || "$(PYTHON)" -m pip install --user --quiet --break-system-packages uv \
	      || "$(PYTHON)" -m pip install --quiet uv; \
	  fi; \
	  UV="$(PYTHON) -m uv"; \
	fi; \
	if [ ! -x "$(PY)" ]; then $$UV venv --python "$(PYTHON)" $(VENV); fi; \
	$$UV pip install --python $(PY) --compile-bytecode -r requirements.txt; \
	$$UV pip install --python $(PY) --no-deps -e .
	@touch $@

run: setup
	@$(STACK) run

stop:
	@$(STACK) down

status:
	@$(STACK) status

# Deletes every piece of local state without asking: the Airflow DB, logs and password, the MLflow
# store and models, the seeded source and raw partitions, reports and the local DVC remote.
reset: stop
	rm -rf .airflow .mlflow data reports .dvc-remote

up-distributed: setup
	@$(STACK) up --distributed

run-distributed: setup
	@$(STACK) run --distributed

status-distributed:
	@$(STACK) status --distributed

down-distributed:
	@$(STACK) down --distributed

# `docker compose` where Docker has the plugin, else the Docker Compose binary pinned in requirements.txt.
compose-config: setup
	@$(PY) -m retrainer_launcher.topology compose-config && echo "docker-compose.yaml: valid"

# The browser tests (tests/e2e/test_ui_browser.py) drive Debian's chromium with Playwright; Playwright's own
# browser download (`playwright install`) is never used. Needs root or sudo the first time only.
CHROMIUM := /usr/bin/chromium
setup-browser:
	@if [ -x "$(CHROMIUM)" ]; then echo "chromium: $(CHROMIUM) (already installed)"; \
	else \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's chromium for the browser tests ($$SUDO apt-get install chromium)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	fi

# The tiers on TEST_WORKERS cores (pytest-xdist): one test module per worker at a time, the modules that
# start Airflow stacks first (tests/conftest.py). TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 2
test: setup setup-browser
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile tests

# Refresh docs/screenshots/retrainer-page.png from the browser test (a plain `make test` never writes it).
screenshots: setup setup-browser
	RETRAINER_UPDATE_SCREENSHOT=$(CURDIR)/docs/screenshots/retrainer-page.png $(VENV)/bin/pytest -q tests/e2e/test_ui_browser.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff check --select AIR dags plugins

bench: setup
	PYTHONPATH=include:. $(PY) bench/run.py

bench-quick: setup
	PYTHONPATH=include:. $(PY) bench/run.py --quick

drift-demo: setup
	@$(STACK) drift-demo
