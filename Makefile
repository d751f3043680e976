# One place for the project's entry points. Everything runs in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo demo-script test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,browser]'
	touch $(STAMP)

demo: setup          ## run the quickstart notebook headless on a local mesh, show its results
	$(BIN)/python notebooks/run.py notebooks/quickstart.ipynb

demo-script: setup   ## the same tour as a plain script
	$(BIN)/python scripts/quickstart.py

test: setup          ## the whole test suite (browser tests skip without Chromium, except in CI)
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup         ## dispatch latency, throughput, payload, nested fan-out, cold start
	$(BIN)/python benchmarks/bench_dispatch.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache
