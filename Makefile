# The two commands of the README: `make run` and `make test`. Each bootstraps .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JAXOOD_DATA_DIR ?= $(CURDIR)/data
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run test lint format data reproduce vae tables ship bench clean

# (Re)install whenever a requirements file changes.
$(STAMP): requirements.txt requirements-data.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

data: $(STAMP)
	$(PY) -m jaxood.data prepare

RUN_FLAGS := --config experiments/configs/glow_fmnist.py --workdir runs/glow_fmnist

# Restores the shipped checkpoints (general, id, id_outlier and Ren's background
# model); scores WAIC only if its ensemble was trained before (make reproduce).
run: data
	$(PY) -m experiments.main $(RUN_FLAGS) --config.train_baseline_models=False --mode all

test: data
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Trains every model (ignoring shipped checkpoints) unless its run directory already
# finished it, scores every detector, regenerates the tables of the READMEs.
# Interrupted? Run it again: finished runs are kept, the interrupted one resumes.
# `make reproduce REPRODUCE_FLAGS=--shipped` restores the shipped Fashion-MNIST
# checkpoints instead of retraining them (over an hour less on 2 cores).
REPRODUCE_FLAGS ?=
reproduce: data
	$(PY) -m experiments.reproduce --runs runs $(REPRODUCE_FLAGS)

# The VAE experiments alone (Vacant Holes: IWAE, typicality, hole indicator, regret).
vae: data
	$(PY) -m experiments.vae_pipeline --config experiments/configs/vae_ood.py --workdir runs/vae_ood

# Regenerate experiments/README.md and the README results block from runs/.
tables: $(STAMP)
	$(PY) -m experiments.tables

# Copy the trained stages of runs/glow_fmnist into the checkpoints make run restores.
ship: $(STAMP)
	$(PY) -m experiments.ship --run runs/glow_fmnist --to experiments/checkpoints/glow_fmnist

BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: benchmarks/requirements.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -r benchmarks/requirements.txt
	@touch $@

bench: data $(BENCH_VENV)/.installed
	$(PY) -m benchmarks.flow_throughput --torch-python $(BENCH_VENV)/bin/python
	$(PY) -m benchmarks.lid_speed --torch-python $(BENCH_VENV)/bin/python

clean:
	rm -rf $(VENV) runs
