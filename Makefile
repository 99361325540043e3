# Everything runs from a project-local virtualenv; the only prerequisite is Python >= 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit lint lock bench chaos clean

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

## requirements.lock, what the image installs: the runtime dependencies at the versions
## installed here (what the tests ran against), with every file's hash.
lock: install
	$(BIN)/pip freeze --exclude-editable > $(VENV)/tested-versions.txt
	$(PYTHON) -m venv $(VENV)/lock-tools
	$(VENV)/lock-tools/bin/pip install --quiet --disable-pip-version-check pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/lock-tools/bin/pip-compile --quiet --generate-hashes \
		--strip-extras --build-deps-for wheel --allow-unsafe --no-emit-index-url --no-emit-find-links \
		-c $(VENV)/tested-versions.txt \
		-o requirements.lock pyproject.toml

## The benchmarks: the engine beside the bare-Temporal floor, in one run.
bench: install
	$(BIN)/python -m bench

## The long fault-injection run: kills and restarts while 500 orders execute.
chaos: install
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
