# One entry point per thing a person does: `make demo` and `make test` on a fresh clone.
# uv runs everything from the lock file as committed (--frozen): a stale lock is an error to fix, not to paper over.

SHELL := /bin/bash
# uv may be on PATH or only importable (pip installs it where PATH does not always look).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
# `uv run` would otherwise re-lock and re-sync on its own.
export UV_FROZEN := 1
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test up down status lint schemas catalogues

help:
	@echo "make install     uv and the workspace's locked dependencies (uv sync --frozen)"
	@echo "make demo        start the stack, replay the seed's scenario, show the signed webhook, stop"
	@echo "make test        every test (unit, integration, e2e, faults); needs RabbitMQ (.ci/run starts it)"
	@echo "make up / down   start / stop the stack in the background (intake on :8080; logs in .run/logs)"
	@echo "make status      which processes of that stack run and are ready"
	@echo "make lint        ruff check and format check"
	@echo "make schemas     regenerate the JSON Schemas;  make catalogues: the API and message catalogues"

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

demo: install
	$(UV) run recovery demo

test: install
	@status=0; $(UV) run pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; fi; \
	exit $$status

up: install
	$(UV) run recovery up

down:
	$(UV) run recovery down

status:
	$(UV) run recovery status

lint: install
	$(UV) run ruff check
	$(UV) run ruff format --check

# Filled in by the contracts engineer (JSON Schemas from libs/contracts, checked for drift in CI).
schemas: install
	@echo "schemas: nothing to generate yet"

# Filled in with the generated OpenAPI (intake) and AsyncAPI (message) catalogues.
catalogues: install
	@echo "catalogues: nothing to generate yet"
