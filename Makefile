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

FAST   := not model and not server and not browser
CHECKED := src tests bench eval scripts train

.PHONY: run test test-fast check install install-scale index browser bench load clean

run: index  ## serve on $(HOST):$(PORT), building the index first if it is missing or stale
	@echo "==> [3/3] starting the server: loading the model and index, then open http://$(HOST):$(PORT)/ (Ctrl-C stops)"
	$(BIN)/jn-qa serve --host $(HOST) --port $(PORT)

test: $(TEST_STAMP) browser  ## the whole test suite
	$(BIN)/python -m pytest -q

test-fast: $(TEST_STAMP)  ## every test that loads no model, starts no server and drives no browser (under 2 min)
	$(BIN)/python -m pytest -q -m "$(FAST)"

check: $(TEST_STAMP)  ## formatting, lint and types over src, tests, bench, eval and scripts: must report nothing
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/mypy

install: $(TEST_STAMP)  ## a developer's venv: runtime and test dependencies

SCALE_STAMP := $(VENV)/.scale-installed

install-scale: $(SCALE_STAMP)  ## the scale extras (Qdrant backend, Ray embedding) on top: their tests run instead of skipping

$(SCALE_STAMP): $(TEST_STAMP) pyproject.toml
	@echo "==> installing the scale extras (qdrant-client, ray[data]; docs/scale-out.md)"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,scale]'
	touch $@

# torch first, from the local CPU wheel, and held there by a constraints file for every later install:
# anything depending on torch (openvino's converters, optimum, torchvision) would otherwise pull torch
# 2.14 with CUDA builds. `make run` gets the runtime dependencies only.
$(STAMP): pyproject.toml
	@echo "==> [1/3] installing into $(VENV) (first time: a few minutes; later runs skip this)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "    pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	echo torch==2.13.0 > $(CONSTRAINTS)
	@echo "    torch 2.13.0, CPU build (the largest download)"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) torch==2.13.0
	@echo "    jn-qa with the bundled model (runtime dependencies only)"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml  ## the test extras: pytest, playwright, schemathesis and the rest
	@echo "==> installing the test tools (test runner, browser driver, API fuzzer, linters)"
	test -f $(CONSTRAINTS) || echo torch==2.13.0 > $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

index: $(STAMP)  ## incremental: does nothing when the corpus and settings are unchanged
	@echo "==> [2/3] building the index from $${JNQA_CORPUS:-corpus}/ (only what changed; progress on the terminal)"
	$(BIN)/jn-qa build

browser:  ## Debian's chromium for the browser tests (needs root or sudo; skipped if already there)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not installed and no root: browser tests will be skipped"; fi; }

BENCH_STAMP := $(VENV)/.bench-installed

bench: index $(BENCH_STAMP)  ## the quick benchmark set, under 20 min with warm caches; rewrites docs/benchmarks.md
	$(BIN)/python -m bench.run --quick

$(BENCH_STAMP): $(TEST_STAMP) pyproject.toml  ## the bench extras: matplotlib, psutil, txtai (the peer it is compared with)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,bench]'
	touch $@

load: index  ## 32 clients for 60 s on 1 and 2 workers, then the same while a source is added and rebuilt (docs/reliability.md)
	$(BIN)/python -m bench.load --clients 32 --seconds 60 --workers 1,2 --json artifacts/load.json
	$(BIN)/python -m bench.load --clients 32 --seconds 60 --workers 1 --rebuild --json artifacts/load-rebuild.json

clean:
	rm -rf $(VENV) index/versions index/tmp index/CURRENT artifacts
