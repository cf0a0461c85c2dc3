# Two commands on a fresh machine (Python 3.11 + pip): `make demo` and `make test`.
# Both create .venv from the lock files when missing or out of date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .tools/checkov
STAMP := $(VENV)/.glassbox-installed
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
OPA_STAMP := $(VENV)/.opa-installed

.PHONY: demo test lint typecheck unit bench clean lock-check

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# OPA's engine (the default Rego engine), pinned by hash. Its wheel claims Python >=3.14 but carries no CPython
# ABI (a ctypes wrapper over a Go c-shared library), so the claim is overridden here and only here.
$(OPA_STAMP): requirements-opa.lock $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
		--ignore-requires-python -r requirements-opa.lock
	touch $(OPA_STAMP)

# checkov lives in its own environment: current checkov pins packaging<24, current pulumi-aws needs
# packaging>=24 (README, Dependencies). glassbox talks to it through a warm worker process.
$(CHECKOV_STAMP): requirements-checkov.lock
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.lock
	touch $(CHECKOV_STAMP)

demo: $(STAMP) $(OPA_STAMP) $(CHECKOV_STAMP)
	$(BIN)/glassbox demo

test: $(STAMP) $(OPA_STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP) $(OPA_STAMP) $(CHECKOV_STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .tools .glassbox-demo .pytest_cache .mypy_cache .ruff_cache
