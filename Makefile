# xai-crowd. Quick start: `make demo` (build the demo study and serve it), `make test`.
SHELL := /bin/bash
# uv: the one on PATH, else the pip-installed module (bootstrapped by `make install`).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PY := $(UV) run --frozen python
# uv links packages from its cache (hardlinks, its default): a fresh checkout installs
# in seconds; copying torch and friends instead took six minutes.

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

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

demo: install
	$(PY) manage.py demo

serve: install
	$(PY) manage.py runserver 127.0.0.1:8000

migrate: install
	$(PY) manage.py migrate

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

worker: install
	$(UV) run --frozen celery -A config worker -Q gpu,cpu -c 1 --beat --loglevel INFO
