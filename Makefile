# make setup: .venv with the project (editable) and its test extras; quick when nothing changed.
# make demo:  the main job on the bundled defaults.   make test: the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	$(PY) -m smt summary

test: setup
	$(PY) -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
