# Developer entry points. Every target installs what it needs into .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_DIR := $(VENV)/lambda-runtime
STAMP := $(VENV)/.installed
LAYER ?= build/layer
INVOCATIONS ?= 5
TRIALS ?= 100

.PHONY: help venv test lint audit demo sandbox layer layer-lock layer-local bench-flush bench-startup bench-signer bench-parse bench-faults bench-receiver clean

help:
	@echo "make demo       run the sample functions in the local Lambda sandbox and show the traces"
	@echo "make test       run the test suite"
	@echo "make sandbox    LAYER=<dir> INVOCATIONS=<n>: run the succeeding sample function with a layer"
	@echo "make lint       ruff, mypy and the import contracts"
	@echo "make audit      the locked layer wheels and the dev venv against PyPI's advisories; security rules"
	@echo "make layer      every layer zip (Python runtime x architecture) in dist/, with their sizes"
	@echo "make layer-lock re-resolve the layer's wheels into layer/requirements.lock (after a dependency change)"
	@echo "make bench-flush, bench-startup, bench-signer   the benchmarks; tables in bench/README.md"
	@echo "make bench-parse   what parse_batch costs per event, against orjson.loads alone (bench/README.md)"
	@echo "make phoenix    PHOENIX_PORT=<port>: the sample functions exporting to Arize Phoenix; prints the trace URLs"
	@echo "make test-phoenix  the end-to-end test: Phoenix's REST API and its trace view in headless Chromium"
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
	$(BIN)/ruff check extension sandbox tests layer examples bench e2e
	$(BIN)/mypy
	$(BIN)/lint-imports

# A known vulnerability in a locked layer wheel fails, and so does one the advisories cannot be read for; one in
# the dev venv is printed as a warning (layer/audit.py says why). Then bandit's rules (ruff's S) over what ships.
audit: $(STAMP)
	$(BIN)/python layer/audit.py
	$(BIN)/ruff check --select S extension layer/main.py

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

bench-signer: $(STAMP)
	$(BIN)/python -m bench.signer --write

bench-parse: $(STAMP)
	$(BIN)/python -m bench.parse --write

bench-faults: layer-local
	$(BIN)/python -m bench.faults --trials $(TRIALS) --write

bench-receiver: layer-local
	$(BIN)/python -m bench.receiver --write

demo: layer-local
	$(BIN)/python -m sandbox demo --layer build/layer

# Arize Phoenix, a real tracing backend, in an environment of its own: large (about 850 MB), and its
# OpenTelemetry and protobuf pins are its own. Nothing of ours imports it; we talk to it over HTTP.
PHOENIX_VENV := .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed
PHOENIX_PORT ?= 6006

.PHONY: phoenix-venv phoenix test-phoenix chromium

$(PHOENIX_STAMP): e2e/phoenix-requirements.txt
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install --quiet --upgrade pip
	$(PHOENIX_VENV)/bin/pip install --quiet -r e2e/phoenix-requirements.txt
	touch $(PHOENIX_STAMP)

phoenix-venv: $(PHOENIX_STAMP)

phoenix: layer-local $(PHOENIX_STAMP)
	$(BIN)/python -m e2e --phoenix $(PHOENIX_VENV)/bin/phoenix --port $(PHOENIX_PORT)

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test-phoenix: $(STAMP) $(PHOENIX_STAMP) chromium
	$(BIN)/pytest -m phoenix tests/e2e

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) build dist .sandbox
