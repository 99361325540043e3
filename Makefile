# Everything runs from a project-local virtualenv; the only prerequisite is Python >= 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit lint bench chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

## Embedded Temporal (+ Web UI), PostgreSQL, Redis, migrations, worker and API; Ctrl-C stops all.
run: install
	$(BIN)/order-engine dev

## The whole test suite against real Temporal, PostgreSQL and Redis.
test: install
	$(BIN)/pytest

## Seconds-fast feedback: pure unit tests and the workflow's paths on the time-skipping
## test server (no PostgreSQL, Redis or Temporal dev server).
test-unit: install
	$(BIN)/pytest -q tests/unit tests/workflows

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## The benchmarks: the engine beside the bare-Temporal floor, in one run.
bench: install
	$(BIN)/python -m bench

## The long fault-injection run: kills and restarts while 500 orders execute.
chaos: install
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
