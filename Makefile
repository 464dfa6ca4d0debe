# make setup: .venv with the project (editable) and its test extras; quick when nothing changed.
# make demo:  the main job on the bundled defaults (report, then the figure set into figures/).
# make test:  the lint step (ruff), then the test suite and every notebook in fast mode.
# make lab:   JupyterLab on notebooks/, on localhost (LAB_PORT, default 8888; LAB_ARGS pass through; as root,
#             with --allow-root, as in a container or CI).
# make explorable: the SAM playground and the figure set (figures/, when make demo made it) as a static
#             folder, site/, that opens from disk (python -m viz explorable).
# make data:  the Fashion-MNIST idx files (Debian package dataset-fashion-mnist) for training.
# make sysdeps: Debian's chromium (browser test) and fonts-liberation2 (Times-metric serif for figures),
#             installed when missing and the user is root; otherwise says what to install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup sysdeps demo test lab bench clean data explorable

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

SYSPKGS := chromium fonts-liberation2

sysdeps:
	@missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		(apt-get install -y -q $$missing >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null)) \
		&& rm -f $$($(PY) -c 'import matplotlib; print(matplotlib.get_cachedir())' 2>/dev/null)/fontlist-*.json; \
	else \
		echo "not installed:$$missing (sudo apt-get install$$missing); the browser test is skipped without chromium"; \
	fi

demo: setup sysdeps
	$(PY) -m viz demo --overwrite $(DEMO_ARGS)

test: setup sysdeps
	$(PY) -m ruff check .
	SMT_NOTEBOOK_FAST=1 $(PY) -m pytest -n 2 --dist loadgroup --durations=15 tests notebooks --nbmake $(PYTEST_ARGS)

explorable: setup
	$(PY) -m viz explorable --overwrite --out site $(if $(wildcard figures/index.html),--figures figures) $(EXPLORABLE_ARGS)

LAB_PORT ?= 8888
LAB_USER_ID ?= $(shell id -u)
LAB_ROOT := $(if $(filter 0,$(LAB_USER_ID)),--allow-root)

lab: setup
	@echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab (its token is printed below; a busy port is an error, not another port)"
	$(PY) -m jupyter lab --ip 127.0.0.1 --port $(LAB_PORT) --ServerApp.port_retries=0 --notebook-dir notebooks $(LAB_ROOT) $(LAB_ARGS)

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
