# Two commands do all set-up:  `make demo` (runs the node live on the embedded default)
# and `make test` (the test suite CI runs). Both create the project venv on first use.
# `make test-jazzy` runs the ROS node and bag tests again on ROS 2 Jazzy (LTS) in a second
# venv, .venv-jazzy: the same pinned non-ROS packages, requirements-jazzy.txt for ROS.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
VENV_JAZZY  ?= .venv-jazzy
JAZZY_STAMP  = $(VENV_JAZZY)/.installed
JAZZY_TESTS ?= test/test_node.py test/test_node_inputs.py test/test_lifecycle_node.py \
               test/test_transport.py test/test_params.py test/test_messages.py test/test_bags.py \
               test/test_sim_time.py

.PHONY: venv venv-jazzy demo lint test test-jazzy benchmark clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv-jazzy: $(JAZZY_STAMP)

# Every pin of requirements.txt except its ros-kilted-* lines, then the Jazzy ROS wheels.
$(JAZZY_STAMP): requirements.txt requirements-jazzy.txt setup.py
	$(PYTHON) -m venv $(VENV_JAZZY)
	$(VENV_JAZZY)/bin/python -m pip install --quiet --upgrade "pip>=24"
	grep -v '^ros-kilted-' requirements.txt > $(VENV_JAZZY)/requirements-shared.txt
	$(VENV_JAZZY)/bin/python -m pip install --quiet -r $(VENV_JAZZY)/requirements-shared.txt \
		-r requirements-jazzy.txt
	$(VENV_JAZZY)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(JAZZY_STAMP)

demo: $(STAMP)
	$(VENV)/bin/lsmdepth demo $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(PY) -m pytest -q test $(ARGS)

test-jazzy: $(JAZZY_STAMP)
	$(VENV_JAZZY)/bin/python -m pytest -q $(JAZZY_TESTS) $(ARGS)

benchmark: $(STAMP)
	$(PY) -m lsmdepth_ros.benchmarks.models $(ARGS)

clean-venv:
	rm -rf $(VENV) $(VENV_JAZZY)
