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
# FlexiBERT architectures extracted by `make demo` (ids 0..DEMO_ARCHS-1; 0..49 are the search split): `make demo` with 300
# took 10.3 minutes from a fresh clone on 2 cores; DEMO_ARCHS=500 is the full benchmark (15.5 min measured from a fresh clone).
DEMO_ARCHS ?= 300

.PHONY: venv test demo example bench extract smollm2-mlp downstream lab paper results ceiling lpzero-batch clean-cache

venv: $(VENV)/.installed

# The project goes in editable as a plain path entry (editable_mode=compat), not as an import hook that runs while
# Python starts: Ctrl-C during start-up then reaches the `lpzero` command's one-line handler sooner.
$(VENV)/.installed: requirements.txt requirements-nodeps.txt requirements.lock pyproject.toml
	@echo "setting up $(VENV)"
	@if command -v uv >/dev/null 2>&1; then UV=uv; $$UV venv -q --allow-existing -p $(PYTHON) $(VENV); \
	else $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q uv && UV=$(BIN)/uv; fi && \
	$$UV pip install -q --python $(BIN)/python -r requirements.txt -c requirements.lock -e . -C editable_mode=compat && \
	$$UV pip install -q --python $(BIN)/python --no-deps -r requirements-nodeps.txt
	@touch $@

# Style (ruff), the layer contract (import-linter: llama > workbench > stats > search > errors/files), then the tests.
test: venv
	$(BIN)/ruff check lpzero_core tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# After LPZero's template search, the held-out table with the rows of the other modes' chosen proxies (5 seeds
# each, structural fallback) beside it, into runs/demo/ (the README is not touched).
demo: venv
	$(BIN)/lpzero extract --benchmark flexibert --archs 0:$(DEMO_ARCHS)
	$(BIN)/lpzero search --benchmark flexibert --seed 0 --allow-partial --out runs/demo/flexibert
	$(BIN)/lpzero results --benchmarks flexibert --allow-partial --no-readme --out runs/demo/results --runs runs/demo --quiet

# The worked example (examples/bring_your_own): its committed GPT-2/LLaMA config folder as a benchmark, by path:
# extract -> search -> evaluate -> rank into runs/bring_your_own (EXAMPLE_FLAGS= without --reuse retrains the set).
EXAMPLE_FLAGS ?= --reuse
example: venv
	$(BIN)/python examples/bring_your_own/bring_your_own.py $(EXAMPLE_FLAGS)

bench: venv
	$(BIN)/python bench/bench.py

# Statistics caches of both benchmarks (resumable: rerun to finish; one Dask worker per core).
extract: venv
	$(BIN)/lpzero extract --benchmark flexibert
	$(BIN)/lpzero extract --benchmark gpt2-wt103

# The measured smollm2-mlp benchmark's rows (committed; resumable: rerun to finish; SMOLLM2_WORKERS Dask workers,
# one torch thread each), then the between-halves rank correlation of the rows built so far.
SMOLLM2_WORKERS ?= 2
smollm2-mlp: venv
	$(BIN)/lpzero build-benchmark smollm2-mlp --workers $(SMOLLM2_WORKERS)
	$(BIN)/lpzero build-benchmark smollm2-mlp --halves

# results/<benchmark>.csv|md and the README tables, from the caches (RESULTS_FLAGS=--allow-partial for an
# unfinished cache: the tables then say how many architectures they cover).
# RESULTS_BENCHMARKS: the benchmarks whose caches exist (make paper passes its PAPER_BENCHMARKS).
RESULTS_FLAGS ?=
RESULTS_BENCHMARKS ?= flexibert gpt2-wt103
results: venv
	$(BIN)/lpzero results --benchmarks $(RESULTS_BENCHMARKS) --published 30 $(RESULTS_FLAGS)

# What each benchmark allows (results/<benchmark>-ceiling.csv|md, figures/<benchmark>_ceiling.*): retraining noise
# and a supervised learning curve over the architecture description, beside the mode runs `make results` left.
ceiling: venv
	@set -e; for b in $(RESULTS_BENCHMARKS); do $(BIN)/lpzero ceiling --benchmark $$b; done

# JupyterLab on the project. The notebooks name the kernel "python3": installed into the venv (which Jupyter
# prefers over user-level kernels), it is the venv's own interpreter. LAB_FLAGS: e.g. --no-browser --port 8890.
LAB_FLAGS ?=
lab: venv
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (LPZero .venv)" >/dev/null
	$(BIN)/jupyter lab --notebook-dir=. $(LAB_FLAGS)

# The paper's figures: notebooks 01 -> 02 -> 03 run headless (papermill) for each benchmark; executed copies in
# runs/paper/<benchmark>/, figures in figures/<benchmark>_*.png|pdf. PAPER_FLAGS adds papermill parameters to
# every notebook, e.g. PAPER_FLAGS="-p allow_partial True" for an unfinished cache.
PAPER_BENCHMARKS ?= flexibert gpt2-wt103
PAPER_FLAGS ?=
paper: venv
	$(MAKE) results RESULTS_BENCHMARKS="$(PAPER_BENCHMARKS)"
	$(MAKE) ceiling RESULTS_BENCHMARKS="$(PAPER_BENCHMARKS)"
	@set -e; for b in $(PAPER_BENCHMARKS); do mkdir -p runs/paper/$$b; \
	  for nb in 01_extract_statistics 02_search_proxy 03_correlation_plots; do \
	    echo "== $$b: $$nb"; \
	    $(BIN)/papermill -k python3 --log-level WARNING notebooks/$$nb.ipynb runs/paper/$$b/$$nb.ipynb \
	      -p benchmark $$b $(PAPER_FLAGS); \
	  done; done

# Notebook 04 on the real parent (SmolLM2-135M, offline): the downstream table results/smollm2-downstream.csv|md
# and figures/smollm2_downstream.png|pdf; the executed copy in runs/paper/04_llama_downstream.ipynb. It reads the
# committed smollm2-mlp rows (nothing is rebuilt). DOWNSTREAM_FLAGS adds papermill parameters, e.g. "-p windows 64".
DOWNSTREAM_FLAGS ?=
downstream: venv
	@mkdir -p runs/paper
	$(BIN)/papermill -k python3 --log-level WARNING notebooks/04_llama_downstream.ipynb \
	  runs/paper/04_llama_downstream.ipynb -p output_dir results -p figures_dir figures $(DOWNSTREAM_FLAGS)

# LPZero's released FlexiBERT proxy at growing batches vs LPZero's published values (results/flexibert-lpzero-batch*,
# figures/flexibert_lpzero_batch.*). LPZERO_BATCH_FLAGS: e.g. "--device cuda" (all four batches), or on a CPU
# "--batches 4x128 16x128".
LPZERO_BATCH_FLAGS ?=
lpzero-batch: venv
	$(BIN)/python -m lpzero_core.workbench.batch_study $(LPZERO_BATCH_FLAGS)

clean-cache:
	rm -rf data/cache
