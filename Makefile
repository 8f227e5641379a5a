# m5ops: `make demo` runs the pipeline on the embedded synthetic data; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOME_DIR ?= workspace
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
LAB_PORT ?= 8888
# the suite is mostly real processes (kernels, runners, Voila, chromium) waiting on each other: two
# pytest workers keep both cores busy (13-15 min here, against 23 min on one)
TEST_WORKERS ?= 2
# JupyterLab refuses to run as root (containers do) unless told so
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: install install-test install-bench demo test bench lab clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	command -v chromium >/dev/null || bash scripts/install-chromium.sh
	touch $@

install-bench: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP)
	bash scripts/install-bench.sh $(BIN)/python
	touch $@

demo: install
	$(BIN)/python -m m5ops.cli.demo --home $(HOME_DIR)

test: install-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

bench: install-bench
	$(BIN)/python bench/run_all.py

lab: install
	M5OPS_HOME=$(abspath $(HOME_DIR)) $(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) $(ALLOW_ROOT) notebooks/

clean:
	rm -rf $(VENV) *.egg-info lib/*.egg-info
