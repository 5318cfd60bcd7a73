# Two commands do all set-up on a fresh machine:
#   make demo   - install, then convert the embedded CamVid sample, train briefly, test, write pictures
#   make test   - install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-venv

install: $(STAMP)

$(STAMP): requirements pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo.py

test: $(STAMP)
	$(PY) -m pytest -q -ra tests

clean-venv:
	rm -rf $(VENV)
