# Conveniences over the README's commands.
VENV := .venv
PY := $(VENV)/bin/python

$(PY):
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e ".[test]"

.PHONY: train test test-slow
train: $(PY)
	$(PY) -m src.train

test: $(PY)
	$(PY) -m pytest

test-slow: $(PY)
	$(PY) -m pytest -m slow
