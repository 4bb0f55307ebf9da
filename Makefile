# The two commands of the README: `make run` and `make test`. Each bootstraps .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JAXOOD_DATA_DIR ?= $(CURDIR)/data
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run test lint format data reproduce bench clean

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

run: data
	$(PY) -m jaxood.data summary

test: data
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

reproduce: data
	@echo "make reproduce: filled by later work (issue: full reproduction report)."

bench: data
	@echo "make bench: filled by later work (issues: flows, LID)."

clean:
	rm -rf $(VENV) runs
