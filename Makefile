# LPZero workbench. `make demo` and `make test` set up .venv themselves (with uv; pip installs uv into
# the venv first when it is not on PATH).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export MPLBACKEND ?= Agg
# Local wheel mirror, when the machine has one (uv reads UV_FIND_LINKS).
ifneq ($(wildcard /opt/wheels),)
export UV_FIND_LINKS ?= /opt/wheels
endif
# FlexiBERT architectures extracted by `make demo` (ids 0..DEMO_ARCHS-1; 0..49 are the search split).
# DEMO_ARCHS=500 is the full benchmark.
DEMO_ARCHS ?= 150

.PHONY: venv test demo bench extract lab paper results clean-cache

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements.lock pyproject.toml
	@echo "setting up $(VENV)"
	@if command -v uv >/dev/null 2>&1; then UV=uv; $$UV venv -q --allow-existing -p $(PYTHON) $(VENV); \
	else $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q uv && UV=$(BIN)/uv; fi && \
	$$UV pip install -q --python $(BIN)/python -r requirements.txt -c requirements.lock -e .
	@touch $@

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/lpzero extract --benchmark flexibert --archs 0:$(DEMO_ARCHS)
	$(BIN)/lpzero search --benchmark flexibert --seed 0 --allow-partial --out runs/demo-flexibert

bench: venv
	$(BIN)/python bench/bench.py

# Statistics caches of both benchmarks (resumable: rerun to finish; one Dask worker per core).
extract: venv
	$(BIN)/lpzero extract --benchmark flexibert
	$(BIN)/lpzero extract --benchmark gpt2-wt103

# results/<benchmark>.csv|md and the README tables, from the caches (RESULTS_FLAGS=--allow-partial for an
# unfinished cache: the tables then say how many architectures they cover).
RESULTS_FLAGS ?=
results: venv
	$(BIN)/lpzero results --published 30 $(RESULTS_FLAGS)

lab: venv
	$(BIN)/python -m ipykernel install --user --name lpzero --display-name "LPZero (.venv)" >/dev/null
	$(BIN)/jupyter lab --notebook-dir=notebooks

clean-cache:
	rm -rf data/cache
