# make setup: .venv with the project (editable) and its test extras; quick when nothing changed.
# make demo:  the main job on the bundled defaults.   make test: the lint step (ruff), then the test suite.
# make data:  the Fashion-MNIST idx files (Debian package dataset-fashion-mnist) for training.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean data

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	$(PY) -m viz demo $(DEMO_ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

FMNIST_DIR ?= /usr/share/datasets/fashion-mnist

data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] || [ -f $(FMNIST_DIR)/train-images-idx3-ubyte ]; then \
		echo "Fashion-MNIST found in $(FMNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update && apt-get install -y dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST is missing from $(FMNIST_DIR). Install it with:"; \
		echo "    sudo apt-get install dataset-fashion-mnist"; \
		echo "or put the four idx files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,"; \
		echo "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder and pass"; \
		echo "--data-dir FOLDER to python -m smt.train (or set FASHION_MNIST_DIR)."; \
		exit 1; \
	fi

bench: setup
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
