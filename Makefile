# Two commands for a newcomer: `make demo` and `make test`. Both create .venv if missing.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench-deps clean
setup: $(VENV)/.installed

# Versions in constraints.txt are the ones tested together; pyproject.toml holds the lower bounds.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

demo: setup
	$(PY) -m experiments.demo

test: setup
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS)

# PyTorch (CPU) is only needed by benchmarks.train, never by the package or its tests.
bench-deps: setup
	$(PY) -m pip install -q torch==2.13.0

clean:
	rm -rf $(VENV) runs build *.egg-info
