# The two commands of the README: `make run` and `make test`. Each bootstraps .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JAXOOD_DATA_DIR ?= $(CURDIR)/data
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run test test-extended lint format data reproduce vae tables ship bench clean

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

MAIN := $(PY) -m experiments.main --config experiments/configs
RUN_FLAGS := --config experiments/configs/glow_fmnist.py --workdir runs/glow_fmnist

# Restores the shipped checkpoints (general, id, id_outlier and Ren's background
# model); scores WAIC only if its ensemble was trained before (make reproduce). Then
# the ratios with the new general set (shipped general_images chains) beside them.
run: data
	$(PY) -m experiments.main $(RUN_FLAGS) --config.train_baseline_models=False
	$(PY) -m experiments.general_sets --workdir runs/general_sets --old runs/glow_fmnist

# Two pytest workers (pytest-xdist, --dist loadfile in pyproject.toml: one test file
# each at a time); TEST_WORKERS=0 runs it in one process. The suite is mostly
# single-threaded XLA compilation, so two workers on two cores beat one (755-797 s
# against 1,147 s). From a fresh clone on 2026-12-04: 582 s in all (pytest 515 s,
# 596 tests, empty compilation cache; 947 s on 2026-12-02, before the XLA flags of
# tests/conftest.py and the stable check codes of jaxood/checks.py). Dealing tests
# out singly (--dist loadgroup, module-fixture tests kept together) was slower:
# unfinished after 1,180 s (about 95 % of the tests), likely because tests of one
# file then compile the same programs on both workers. `pytest -m "not slow"` (the inner
# loop): 165 s on two workers, 268 s on one (2026-12-03, warm compilation cache).
# Workers and their subprocesses share an XLA compilation cache in $TMPDIR.
TEST_WORKERS ?= 2
test: data
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# Pipeline runs kept out of make test for CI time (marked `extended`): the CIFAR-10
# Glow, VAE and diffusion configs on mocked data, a whole diffusion run on 4 forced
# devices and the MNIST-5k spline LID command.
test-extended: data
	$(PY) -m pytest -q -m extended -n $(TEST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every published table: the commands that produce them, then the tables (the one
# list: experiments/tables.py reads these lines; `--workdir runs/NAME` publishes
# experiments/results/NAME.json, NAME_lid.json with --mode lid). Each
# command resumes: finished models are kept, an interrupted one resumes, cached scores
# are reused, so an interrupted reproduction is finished by running it again.
# `make reproduce REPRODUCE_FLAGS=--shipped` restores the shipped Fashion-MNIST
# Glows instead of training them again (over an hour less on 2 cores). A LID line
# with `--config.lid.rows_from=runs/X` takes the spectra that run X computed for the
# same model (the larger runs restore the shipped models: with --shipped, X's too).
REPRODUCE_FLAGS ?=
SHIPPED := $(if $(findstring --shipped,$(REPRODUCE_FLAGS)),,--config.checkpoints=)
# Without --shipped, the shipped 6,000-step MNIST-5k models are not restored either:
# only the general model trained by the line before them is.
FROM_RUNS := $(if $(SHIPPED),--config.checkpoints=runs/glow_fmnist_general_images,)
reproduce: data
	$(MAIN)/glow_fmnist.py --workdir runs/glow_fmnist $(SHIPPED)
	$(MAIN)/glow_fmnist.py:mnist_5k --workdir runs/glow_mnist_5k
	$(MAIN)/glow_fmnist.py --workdir runs/glow_fmnist --mode lid
	$(MAIN)/glow_fmnist.py:general_images --workdir runs/glow_fmnist_general_images $(SHIPPED)
	$(MAIN)/glow_fmnist.py:mnist_5k,general_images --workdir runs/glow_mnist_5k_general_images
	$(MAIN)/glow_fmnist.py:general_images --workdir runs/glow_fmnist_general_images --mode lid
	$(MAIN)/glow_fmnist.py:mnist_5k,general_images --workdir runs/glow_mnist_5k_general_images --mode lid
	$(MAIN)/glow_fmnist.py:general_images --workdir runs/glow_fmnist_general_images_5000 --mode lid --config.lid.num_eval=5000 --config.data.ood="('mnist_5k:all', 'animal_mnist:all')" --config.lid.rows_from=runs/glow_fmnist_general_images
	$(MAIN)/glow_fmnist.py:general_images --workdir runs/glow_fmnist_general_images_flips --mode lid --config.lid.num_eval=5000 --config.data.ood="('fashion_mnist_vflip:test', 'fashion_mnist_inverted:test')" --config.lid.rows_from=runs/glow_fmnist_general_images_5000
	$(MAIN)/glow_fmnist.py:general_images --workdir runs/glow_fmnist_general_images_synthetic_5000 --mode lid --config.lid.num_eval=5000 --config.data.ood="('uniform_noise:test', 'constant:test')" --config.lid.rows_from=runs/glow_fmnist_general_images_5000
	$(MAIN)/glow_fmnist.py:mnist_5k,general_images --workdir runs/glow_mnist_5k_general_images_6000 --config.stages.id_steps=6000 --config.stages.snapshots="(1000, 2000, 3000, 4000, 5000)" $(FROM_RUNS)
	$(MAIN)/glow_fmnist.py:mnist_5k,general_images --workdir runs/glow_mnist_5k_general_images_6000 --mode lid --config.lid.num_eval=1000 --config.stages.id_steps=6000 $(FROM_RUNS)
	$(MAIN)/glow_fmnist.py:mnist_5k,general_images --workdir runs/glow_mnist_5k_general_images_6000_5000 --mode lid --config.lid.num_eval=5000 --config.data.max_eval=5000 --config.stages.id_steps=6000 --config.lid.rows_from=runs/glow_mnist_5k_general_images_6000 $(FROM_RUNS)
	$(MAIN)/glow_fmnist.py:mnist_5k,general_images --workdir runs/glow_mnist_5k_general_images_1000 --mode lid --config.lid.num_eval=1000 --config.checkpoints=runs/glow_mnist_5k_general_images
	$(MAIN)/glow_fmnist.py:spline --workdir runs/glow_fmnist_spline --mode lid $(SHIPPED)
	$(MAIN)/glow_fmnist.py:mnist_5k,spline --workdir runs/glow_mnist_5k_spline --mode lid $(SHIPPED)
	$(MAIN)/glow_fmnist.py:mnist_5k,spline --workdir runs/glow_mnist_5k_spline_1000 --mode lid --config.lid.num_eval=1000 --config.lid.rows_from=runs/glow_mnist_5k_spline
	$(MAIN)/glow_fmnist.py:mnist_5k,spline --workdir runs/glow_mnist_5k_spline_5000 --mode lid --config.lid.num_eval=5000 --config.data.max_eval=5000 --config.lid.rows_from=runs/glow_mnist_5k_spline_1000
	$(MAIN)/glow_fmnist.py:spline --workdir runs/glow_fmnist_spline_1000 --mode lid --config.lid.num_eval=1000 --config.lid.rows_from=runs/glow_fmnist_spline
	$(MAIN)/glow_fmnist.py:spline --workdir runs/glow_fmnist_spline_5000 --mode lid --config.lid.num_eval=5000 --config.data.ood="('mnist_5k:all',)" --config.lid.rows_from=runs/glow_fmnist_spline_1000
	$(MAIN)/vae_ood.py --workdir runs/vae_ood
	$(MAIN)/dose_fmnist.py --workdir runs/dose_fmnist
	$(MAIN)/diffusion_fmnist.py --workdir runs/diffusion_fmnist $(SHIPPED)
	$(MAIN)/diffusion_fmnist.py:mnist_5k --workdir runs/diffusion_mnist_5k $(SHIPPED)
	$(PY) -m experiments.tables --collect runs

# The VAE experiments alone (Vacant Holes: IWAE, typicality, hole indicator, regret).
vae: data
	$(MAIN)/vae_ood.py --workdir runs/vae_ood

# Regenerate the generated blocks of the READMEs from experiments/results/ (after
# copying the results of the finished runs under runs/ there).
tables: $(STAMP)
	$(PY) -m experiments.tables --collect runs

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
	$(PY) -m benchmarks.slq_limits
	$(PY) -m benchmarks.flipd_speed
	$(PY) -m benchmarks.ode_tolerance
	$(PY) -m benchmarks.parallel_speed

clean:
	rm -rf $(VENV) runs
