# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8000
HOST   ?= 127.0.0.1
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP  := $(VENV)/.test-installed
CONSTRAINTS := $(VENV)/constraints.txt

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test install index browser bench load clean

run: index  ## serve on $(HOST):$(PORT), building the index first if it is missing or stale
	$(BIN)/jn-qa serve --host $(HOST) --port $(PORT)

test: $(TEST_STAMP) browser  ## the whole test suite
	$(BIN)/python -m pytest -q

install: $(TEST_STAMP)  ## a developer's venv: runtime and test dependencies

# torch first, from the local CPU wheel, and held there by a constraints file for every later install:
# anything depending on torch (openvino's converters, optimum, torchvision) would otherwise pull torch
# 2.14 with CUDA builds. `make run` gets the runtime dependencies only.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	echo torch==2.13.0 > $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) torch==2.13.0
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml  ## the test extras: pytest, playwright, schemathesis and the rest
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

index: $(STAMP)  ## incremental: does nothing when the corpus and settings are unchanged
	$(BIN)/jn-qa build

browser:  ## Debian's chromium for the browser tests (needs root or sudo; skipped if already there)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not installed and no root: browser tests will be skipped"; fi; }

BENCH_STAMP := $(VENV)/.bench-installed

bench: index $(BENCH_STAMP)  ## the quick benchmark set, under 20 min with warm caches; rewrites docs/benchmarks.md
	$(BIN)/python bench/run.py --quick

$(BENCH_STAMP): $(TEST_STAMP) pyproject.toml  ## the bench extras: matplotlib, psutil, txtai (the peer it is compared with)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,bench]'
	touch $@

load: index  ## 32 clients for 60 s on 1 and 2 workers, then the same while a source is added and rebuilt (docs/reliability.md)
	$(BIN)/python bench/load.py --clients 32 --seconds 60 --workers 1,2 --json artifacts/load.json
	$(BIN)/python bench/load.py --clients 32 --seconds 60 --workers 1 --rebuild --json artifacts/load-rebuild.json

clean:
	rm -rf $(VENV) index/versions index/tmp index/CURRENT artifacts
