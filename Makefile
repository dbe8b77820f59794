# `make demo` and `make test` work on a fresh Debian machine with Python 3.11: each creates .venv,
# installs what it needs (system packages through apt-get when missing) and runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench sysdeps clean

demo: $(VENV)/.runtime-installed
	$(BIN)/auditor demo

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest

bench: $(VENV)/.test-installed
	$(BIN)/python bench/snapshot.py
	$(BIN)/python bench/rules.py

# System packages: the venv module (python3-venv on Debian). Report rendering will add its own here.
sysdeps:
	@if ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then \
	  command -v apt-get >/dev/null || { echo "need Python's venv module (python3-venv)" >&2; exit 1; }; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv python3-pip; \
	fi

$(BIN)/python:
	@$(MAKE) --no-print-directory sysdeps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.runtime-installed

clean:
	rm -rf $(VENV) output dist build .pytest_cache
