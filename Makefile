# The two commands of the README's quick start: `make demo` and `make test`.
# Each creates .venv and installs what it needs; re-running only reinstalls when
# pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stoker-installed
# The CPU build of torch that lies on this machine's disk; never a plain `torch`.
TORCH := torch==2.13.0
export KERAS_BACKEND ?= torch

.PHONY: demo test lint typecheck pytest bench clean sysdeps cli-docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stoker demo

lint: $(STAMP)
	$(BIN)/ruff check stoker tests benchmarks examples
	$(BIN)/ruff format --check stoker tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

sysdeps:
	bash .ci/sysdeps

# Keras runs on torch (exported above) for the whole suite; then a second pytest
# process runs Keras' adapter and fit_generator port on Keras' JAX backend, and the
# JAX adapter's tests. JAX warns at every os.fork() once imported, so it never enters
# the first process; there, stoker's default start method is forkserver.
JAX_TESTS := tests/integration/test_keras_adapter.py tests/integration/test_keras_port.py \
	tests/integration/test_jax_adapter.py

pytest: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -m "not slow" $(JAX_TESTS) $(PYTEST_ARGS)

test: lint typecheck pytest

# docs/cli.md is generated from the commands' --help; a test checks it is current.
cli-docs: $(STAMP)
	$(BIN)/python -m stoker.cli._reference docs/cli.md

bench: $(STAMP)
	$(BIN)/python benchmarks/latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
