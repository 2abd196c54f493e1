# One entry point per thing a person does: `make demo` and `make test` on a fresh clone.
# uv runs everything from the lock file as committed (--frozen): a stale lock is an error to fix, not to paper over.

SHELL := /bin/bash
# uv may be on PATH or only importable (pip installs it where PATH does not always look).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
# `uv run` would otherwise re-lock and re-sync on its own.
export UV_FROZEN := 1
# The tests and the demo start hundreds of Python processes: each must import from cached bytecode. An environment
# that sets PYTHONDONTWRITEBYTECODE (this workplace's shells do) makes every one compile every module again (seen:
# 15 s of CPU to import intake, against about 2 from bytecode; the suite four times slower).
unexport PYTHONDONTWRITEBYTECODE
PYTEST_ARGS ?=
# `make test` runs on two pytest-xdist workers, a file at a time each (a module's shared stack starts once, and the
# fault suite's scenarios, one file, run on one worker while the other takes the rest). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install broker demo test faults up down status lint typecheck schemas catalogues

help:
	@echo "make install     uv and the workspace's locked dependencies (uv sync --frozen)"
	@echo "make demo        start the stack, replay the seed's scenario, show the signed webhook, stop"
	@echo "make test        every test: unit, integration, e2e and the fault suite; needs RabbitMQ (make broker)"
	@echo "make broker      this machine's RabbitMQ started (or restarted) with an open-files limit the tests can work with"
	@echo "make faults      the fault suite: kills, restarts, duplicates, poison (docs/guarantees.md)"
	@echo "make up / down   start / stop the stack in the background (intake on :8080; logs in .run/logs)"
	@echo "make status      which processes of that stack run and are ready"
	@echo "make lint        ruff check and format check, the type check, catalogues and schemas up to date"
	@echo "make typecheck   mypy --strict on every service, both libs and the tools"
	@echo "make schemas     regenerate the JSON Schemas;  make catalogues: the API and message catalogues"

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

demo: install broker
	$(UV) run recovery demo

# The local broker (RABBITMQ_URL unset or on this machine) started when absent and restarted, its data kept, when it
# may keep fewer than 4096 files open (Debian's 1024 hangs the suite part-way; tools/local-rabbitmq says why) or is not
# well (an alarm in effect), with its management API on. Not fatal: without a broker the tests say so themselves.
broker:
	-@tools/local-rabbitmq ensure

test: install broker
	@status=0; $(UV) run pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; fi; \
	exit $$status

# The fault suite alone (kill -9, SIGTERM, broker and database restarts, duplicates, poison, a long merchant
# outage) on private RabbitMQ and SecantusDB nodes; part of `make test`. FAULTS_ITERATIONS=3 for the long run.
faults: install broker
	$(UV) run pytest tests/faults $(PYTEST_ARGS)

up: install broker
	$(UV) run recovery up

down:
	$(UV) run recovery down

status:
	$(UV) run recovery status

# Every service, both libraries and the tools (the CLI, the sandboxes, the simulator).
TYPED := libs/contracts/src/recovery_contracts libs/runtime/src/recovery_runtime $(wildcard services/*/src/*) $(wildcard tools/*/src/*)

typecheck: install
	$(UV) run mypy $(TYPED)

lint: install typecheck
	$(UV) run ruff check
	$(UV) run ruff format --check
	$(UV) run recovery catalogues --check
	$(UV) run python -m recovery_contracts.schemas --check

# JSON Schemas of libs/contracts (libs/contracts/schemas/); tests/unit/contracts checks them for drift.
schemas: install
	$(UV) run python -m recovery_contracts.schemas --write

# docs/catalogue/openapi.json (intake), docs/catalogue/asyncapi.json (every service's messages) and
# docs/configuration.md; tests/unit/ops checks them for drift (`recovery catalogues --check`).
catalogues: install
	$(UV) run recovery catalogues --write

# Benchmarks with their raw limits measured in the same run (docs/performance.md); BENCH_ARGS=--quick for a smoke run.
.PHONY: bench
bench: install
	$(UV) run python bench/run_all.py $(BENCH_ARGS)
