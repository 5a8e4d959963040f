# Every target creates .venv on first use: torch==2.13.0 first (a CPU build), then this project in editable mode.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test test-fast lint bench demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,sweep]'
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m vrb.train --simulator agenda

demo: $(STAMP)
	$(PY) -m envs.multiwoz.demo --policy rule --seed 3

test: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m pytest

# every module's unit tests, without process starts, training runs, sweeps and long dialogue batches (-m slow)
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_user.py
	$(PY) benchmarks/bench_env.py
	$(PY) benchmarks/bench_sampler.py
	$(PY) benchmarks/bench_train.py
