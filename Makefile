# xai-crowd. Quick start: `make demo` (build the demo study and serve it), `make test`.
SHELL := /bin/bash
# uv: the one on PATH, else the pip-installed module (bootstrapped by `make install`).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PY := $(UV) run --frozen python
# uv links packages from its cache (hardlinks, its default): a fresh checkout installs
# in seconds; copying torch and friends instead took six minutes.
# DEBUG is off unless set (config/settings.py): the laptop targets (demo, serve, worker)
# default it to 1; an exported DEBUG wins. Tests get it from config/settings_test.py.

.PHONY: help install demo test test-fast test-sqlite lint format bench-maps bench-analysis bench-serve worker serve migrate

help:
	@echo "make demo            build the demo study and serve it at http://127.0.0.1:8000"
	@echo "make test            install everything and run the test suite"
	@echo "make test-sqlite     the rater-loop tests on SQLite (CI runs them after make test)"
	@echo "make lint            ruff check + format check"
	@echo "make bench-maps      Grad-CAM + rendering throughput vs forward-only and pytorch-grad-cam"
	@echo "make bench-analysis  analysis of a generated 1,000,000-answer study"
	@echo "make bench-serve     rater loop under load (gunicorn + PostgreSQL) vs Turkle 3.1.0;"
	@echo "                     BENCH_SERVE_ARGS=--quick for a smoke run (scripts/bench_serve)"
	@echo "make worker          a Celery worker on the gpu and cpu queues, with beat (needs CELERY_BROKER_URL)"
	@echo "make test-stack      the whole stack as processes: smoke test on two hosts + fault tests (tests/stack)"
	@echo "make deploy-check    compose files, env sample, check --deploy, nginx -t (no Docker engine needed)"
	@echo "make backup          database + every storage into BACKUP_DIR (default var/backups/<time>)"
	@echo "make restore         BACKUP_DIR=... [FORCE=1]: back into an empty instance"

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

demo: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py demo

serve: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py runserver 127.0.0.1:8000

migrate: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate

test: install
	$(UV) run --frozen pytest

test-fast: install
	$(UV) run --frozen pytest -m "not slow and not browser"

# The rater loop again on SQLite (the laptop default), whatever DATABASE_URL says:
# on PostgreSQL some of its statements take a faster path of their own. The demo
# build (3 minutes: it trains a model) runs once, in `make test`.
test-sqlite: install
	DATABASE_URL= $(UV) run --frozen pytest tests/studies tests/core -m "not postgres and not browser and not worker" \
		--deselect tests/studies/test_demo_command.py::test_demo_builds_the_three_experiments_and_is_idempotent

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

format: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench-maps: install
	$(PY) scripts/bench_maps.py

bench-analysis: install
	$(PY) scripts/bench_analysis.py
	$(PY) scripts/bench_export.py

bench-serve: install
	$(PY) scripts/bench_serve/run.py $(BENCH_SERVE_ARGS)

.PHONY: deploy-check test-stack
# Compose files, env sample, `check --deploy` and `nginx -t`, without a Docker engine.
deploy-check: install
	$(PY) scripts/deploy_check.py

# The whole stack as processes on loopback: moto_server (S3), gunicorn, a Celery
# worker, a fresh PostgreSQL database; smoke test and fault tests (tests/stack).
test-stack: install
	$(UV) run --frozen pytest tests/stack -m stack -p no:cacheprovider

worker: install
	DEBUG=$${DEBUG:-1} $(UV) run --frozen celery -A config worker -Q gpu,cpu -c 1 --beat --loglevel INFO

# --- Backups (apps/core/backups.py): the database and every storage's files, with a manifest.
.PHONY: backup restore
BACKUP_DIR ?=
backup: install
	$(PY) manage.py backup $(if $(BACKUP_DIR),--out "$(BACKUP_DIR)")

# Refuses a database holding app rows unless FORCE=1.
restore: install
	@test -n "$(BACKUP_DIR)" || { echo "make restore needs BACKUP_DIR=<folder written by make backup>" >&2; exit 2; }
	$(PY) manage.py restore "$(BACKUP_DIR)" $(if $(filter 1,$(FORCE)),--force)
