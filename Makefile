# Two commands do all set-up on a fresh machine:
#   make demo   - install, then convert the embedded CamVid sample, train briefly, test, write pictures
#   make test   - install, then run the test suite
#   make test-eigen - the backend-sensitive tests (pytest -m backend) again with TensorFlow's oneDNN off
#                     (TF_ENABLE_ONEDNN_OPTS=0: Eigen's kernels), the path the default run does not take
#   make tensorboard - link every run under tmp/ into tboards/ (tboards/createlinks), then serve them side by side
#                      on http://localhost:$(TB_PORT)/ (TB_PORT=6006 by default; Ctrl-C stops it)
# and one to explore:
#   make notebook - open play-with-me.ipynb in Jupyter Notebook (installed on first use, and said so)
#                   (NOTEBOOK_ARGS="--no-browser --ip 0.0.0.0" on a remote machine)
# The viewers (tensorboard, notebook) never install or upgrade the project's packages: with no venv, or one
# older than requirements / pyproject.toml (after a pull, say), they stop and name `make install`.
# make install says why it installs; pip itself is pinned (PIP_VERSION) like every other package.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TB_PORT ?= 6006
NOTEBOOK_STAMP := $(VENV)/.notebook-installed
NOTEBOOK_ARGS ?=
PIP_VERSION := 26.3
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)  # Jupyter refuses root (containers) without it

.PHONY: demo test test-eigen tensorboard install notebook clean-venv check-venv

install: $(STAMP)

$(STAMP): requirements pyproject.toml
	@if test -x $(PY); then echo "make install: $? changed since $(VENV) was installed: updating it"; \
	 else echo "make install: creating $(VENV) and installing requirements"; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PY) -m pip install -q -r requirements  # with .pyc: commands start without compiling (PYTHONDONTWRITEBYTECODE stops later writes)
	touch $(STAMP)

# For commands that only use the venv: refuse (exit 2) rather than install behind the user's back.
check-venv:
	@test -x $(PY) || { echo "no virtual environment at $(VENV): run 'make install' first" >&2; exit 2; }
	@test -f $(STAMP) || { echo "$(VENV) was never completely installed: run 'make install'" >&2; exit 2; }
	@for f in requirements pyproject.toml; do test ! $$f -nt $(STAMP) || \
	 { echo "$$f changed since $(VENV) was installed: run 'make install' to update it" >&2; exit 2; }; done

demo: $(STAMP)
	$(PY) demo.py

test: $(STAMP)
	$(PY) -m pytest -q -ra -n 2 --durations=60 tests

test-eigen: $(STAMP)
	TF_ENABLE_ONEDNN_OPTS=0 $(PY) -m pytest -q -ra -n 2 --durations=10 -m backend tests

tensorboard: check-venv
	bash tboards/createlinks
	$(VENV)/bin/tensorboard --logdir tboards --port $(TB_PORT)

notebook: check-venv
	@test -f $(NOTEBOOK_STAMP) -a ! requirements-notebook -nt $(NOTEBOOK_STAMP) || \
	 { echo "make notebook: installing Jupyter Notebook into $(VENV) (requirements-notebook; first use or changed)"; \
	   $(PY) -m pip install -q -r requirements-notebook && touch $(NOTEBOOK_STAMP); }
	$(VENV)/bin/jupyter notebook $(ROOT_FLAG) $(NOTEBOOK_ARGS) play-with-me.ipynb

clean-venv:
	rm -rf $(VENV)
