# `make demo` and `make test` work on a fresh Debian machine with Python 3.11: each creates .venv,
# installs what it needs (system packages through apt-get when missing, see `sysdeps`) and runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# What WeasyPrint needs for the PDF report: Pango, HarfBuzz, Fontconfig, DejaVu and a small CJK font (tenants name
# things in every script). The browser test of the HTML report launches Debian's chromium, $(CHROMIUM), never a
# browser downloaded by playwright.
REPORT_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libfontconfig1 fonts-dejavu-core fonts-wqy-microhei
CHROMIUM := /usr/bin/chromium
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

.PHONY: demo test bench history soak sysdeps testdeps clean

demo: sysdeps $(VENV)/.runtime-installed
	$(BIN)/auditor demo

# On every core (pytest-xdist); one file per worker keeps each module's shared snapshots built once.
test: testdeps $(VENV)/.test-installed
	$(BIN)/python -m pytest -n auto --dist loadfile

bench: sysdeps $(VENV)/.test-installed
	$(BIN)/python bench/snapshot.py
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/report.py

# 50 snapshot + evaluate runs of a 20,000-server cloud: what history costs (about 15 minutes); bench/history.py.
history: sysdeps $(VENV)/.test-installed
	$(BIN)/python bench/history.py

# The service for 500 scheduled runs with faults injected (about half an hour); see bench/soak.py.
soak: sysdeps $(VENV)/.test-installed
	$(BIN)/python bench/soak.py

# System packages, installed with apt-get only when missing (as root directly, otherwise through sudo), so that
# both targets are fast no-ops once everything is there: `sysdeps` checks Python's venv module (python3-venv)
# and the report packages above (dpkg-query); `testdeps`, for `make test` only, checks /usr/bin/chromium and a
# Java for PySpark (Debian's openjdk-17-jre-headless; Spark 4 needs 17 or newer).
sysdeps:
	@venv=; missing=; \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || venv="python3-venv python3-pip"; \
	if command -v dpkg-query >/dev/null; then \
	  for p in $(REPORT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$p"; \
	  done; \
	elif ! ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so.0'; then \
	  echo "warning: Pango not found: the PDF report needs WeasyPrint's system libraries" >&2; \
	fi; \
	if [ -n "$$venv$$missing" ]; then \
	  command -v apt-get >/dev/null || { echo "need system packages: $$venv$$missing" >&2; exit 1; }; \
	  echo "installing system packages: $$venv$$missing"; \
	  $(SUDO) apt-get update -q || exit 1; \
	  if [ -n "$$venv" ]; then $(SUDO) apt-get install -y -q $$venv || exit 1; fi; \
	  if [ -n "$$missing" ]; then $(APT_INSTALL) $$missing || exit 1; fi; \
	fi

testdeps: sysdeps
	@if ! command -v java >/dev/null; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing Java for the Spark test of the lake"; \
	    $(SUDO) apt-get update -q && $(APT_INSTALL) openjdk-17-jre-headless; \
	  else \
	    echo "warning: no java and no apt-get: the Spark test of the lake cannot run" >&2; \
	  fi; \
	fi
	@if [ ! -x $(CHROMIUM) ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing chromium for the HTML report's browser test"; \
	    $(SUDO) apt-get update -q && $(APT_INSTALL) chromium; \
	  else \
	    echo "warning: no $(CHROMIUM) and no apt-get: the browser test of the HTML report cannot run" >&2; \
	  fi; \
	fi

$(BIN)/python: | sysdeps
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
