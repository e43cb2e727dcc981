# Two commands do all set-up:  `make demo` (runs the node live on the embedded default)
# and `make test` (the test suite CI runs). Both create the project venv on first use.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: venv demo test benchmark clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lsmdepth demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q test $(ARGS)

benchmark: $(STAMP)
	$(PY) -m lsmdepth_ros.benchmarks.models $(ARGS)

clean-venv:
	rm -rf $(VENV)
