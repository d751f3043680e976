# One place for the project's entry points. Everything runs in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The second environment: the newest Python (.ci/run finds it) with the newest grpcio and IPython.
NEWEST_PYTHON ?= python3.13
NEWEST_VENV   := .venv-newest
NEWEST_BIN    := $(NEWEST_VENV)/bin

.PHONY: setup demo demo-script test test-plain test-newest lint bench clean

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

test-plain: setup    ## the mesh's tests again on plain reader/writer tasks (WOOL_PLAIN_IO=1)
	WOOL_PLAIN_IO=1 $(BIN)/python -m pytest tests/integration tests/unit/core

# Browser tests are left to `test`: what they add (JupyterLab, Chromium, the widget's JS)
# does not depend on the kernel's Python, and their install is the heaviest.
test-newest:         ## the suite but browser tests on NEWEST_PYTHON, newest grpcio and IPython
	test -x $(NEWEST_BIN)/python || $(NEWEST_PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_BIN)/pip install --quiet --upgrade pip
	$(NEWEST_BIN)/pip install --quiet -e '.[dev]'
	$(NEWEST_BIN)/pip install --quiet --upgrade grpcio ipython ipykernel
	$(NEWEST_BIN)/python -c 'import sys, grpc, IPython, ipykernel; \
		print("test-newest: Python", sys.version.split()[0], "grpcio", grpc.__version__, \
		"IPython", IPython.__version__, "ipykernel", ipykernel.__version__)'
	$(NEWEST_BIN)/python -m pytest -m 'not browser'

lint: setup          ## ruff, mypy over wool and wool_jupyter, and the users' view of routine types
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy tests/typing

bench: setup         ## dispatch latency, throughput, payload, nested fan-out, cold start
	$(BIN)/python benchmarks/bench_dispatch.py

.PHONY: bench-data
# Not part of `test`: a few minutes, 256 MiB payloads, up to 8 workers (tests run `--quick`).
bench-data: setup    ## payload sweep vs gRPC/TCP floors, no-op under a transfer, RSS, scaling, fib
	$(BIN)/python benchmarks/bench_data.py

.PHONY: bench-peers
# Not part of `test`: minutes long, and it downloads Ray, Dask, ipyparallel and wool from PyPI
# into virtualenvs under WOOL_PEERS_DIR (default /tmp/wool-peers).
bench-peers: setup   ## Wool beside Ray, Dask, ipyparallel, the original wool and the floors
	$(BIN)/python benchmarks/peers/bench_peers.py

clean:
	rm -rf $(VENV) $(NEWEST_VENV) artifacts .pytest_cache
