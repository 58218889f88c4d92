# Developer entry points. Every target installs what it needs into .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_DIR := $(VENV)/lambda-runtime
STAMP := $(VENV)/.installed
LAYER ?= build/layer
INVOCATIONS ?= 5
TRIALS ?= 100

.PHONY: help venv test lint demo sandbox layer-local bench-flush bench-startup bench-faults clean

help:
	@echo "make demo       run the sample functions in the local Lambda sandbox and show the traces"
	@echo "make test       run the test suite"
	@echo "make sandbox    LAYER=<dir> INVOCATIONS=<n>: run the succeeding sample function with a layer"
	@echo "make lint       ruff, mypy and the import contracts"
	@echo "make layer      every layer zip (Python runtime x architecture) in dist/, with their sizes"
	@echo "make layer-lock re-resolve the layer's wheels into layer/requirements.lock (after a dependency change)"
	@echo "make bench-faults TRIALS=<n>: collector down, failing, throttling, hanging; buffer overload (bench/README.md)"

$(STAMP): pyproject.toml sandbox/runtime-requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -rf $(RUNTIME_DIR)
	$(BIN)/pip install --quiet --target $(RUNTIME_DIR) -r sandbox/runtime-requirements.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check extension sandbox tests layer examples bench
	$(BIN)/mypy
	$(BIN)/lint-imports

sandbox: $(STAMP)
	$(BIN)/python -m sandbox run --layer $(LAYER) --invocations $(INVOCATIONS) \
		--handler app.succeed --function-dir examples/functions

# Reproducible: the same sources, lock and pinned compilers give the same zip bytes on any machine.
layer: $(STAMP)
	rm -rf dist
	$(BIN)/python layer/build.py --dist dist

layer-lock: $(STAMP)
	$(BIN)/python layer/build.py --lock

layer-local: $(STAMP)
	$(BIN)/python layer/build.py --out build/layer

bench-flush: layer-local
	$(BIN)/python -m bench.flush --write

bench-startup: layer-local
	$(BIN)/python -m bench.startup --write

bench-faults: layer-local
	$(BIN)/python -m bench.faults --trials $(TRIALS) --write

demo: layer-local
	$(BIN)/python -m sandbox demo --layer build/layer

clean:
	rm -rf $(VENV) build dist .sandbox
