# Two commands do all set-up on a fresh machine:
#   make demo   - install, then convert the embedded CamVid sample, train briefly, test, write pictures
#   make test   - install, then run the test suite
#   make test-eigen - the backend-sensitive tests (pytest -m backend) again with TensorFlow's oneDNN off
#                     (TF_ENABLE_ONEDNN_OPTS=0: Eigen's kernels), the path the default run does not take
#   make tensorboard - link every run under tmp/ into tboards/ (tboards/createlinks), then serve them side by side
#                      on http://localhost:$(TB_PORT)/ (TB_PORT=6006 by default; Ctrl-C stops it)
# and one to explore:
#   make notebook - install, plus Jupyter Notebook on first use, then open play-with-me.ipynb
#                   (NOTEBOOK_ARGS="--no-browser --ip 0.0.0.0" on a remote machine)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TB_PORT ?= 6006
NOTEBOOK_STAMP := $(VENV)/.notebook-installed
NOTEBOOK_ARGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)  # Jupyter refuses root (containers) without it

.PHONY: demo test test-eigen tensorboard install notebook clean-venv

install: $(STAMP)

$(STAMP): requirements pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo.py

test: $(STAMP)
	$(PY) -m pytest -q -ra -n 2 --durations=25 tests

test-eigen: $(STAMP)
	TF_ENABLE_ONEDNN_OPTS=0 $(PY) -m pytest -q -ra -n 2 --durations=10 -m backend tests

tensorboard: $(STAMP)
	bash tboards/createlinks
	$(VENV)/bin/tensorboard --logdir tboards --port $(TB_PORT)

$(NOTEBOOK_STAMP): $(STAMP) requirements-notebook
	$(PY) -m pip install -q -r requirements-notebook
	touch $(NOTEBOOK_STAMP)

notebook: $(NOTEBOOK_STAMP)
	$(VENV)/bin/jupyter notebook $(ROOT_FLAG) $(NOTEBOOK_ARGS) play-with-me.ipynb

clean-venv:
	rm -rf $(VENV)
