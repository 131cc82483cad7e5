# optbench developer tasks (GNU make).  `make help` lists them.
#
# The virtual environment is .venv; `make install` (re)builds the C++ engine and
# installs the package editable whenever engine sources, CMakeLists.txt or
# pyproject.toml change (stamp file .venv/.installed).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON      ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VPY         := $(VENV)/bin/python
PIP         := $(VPY) -m pip
STAMP       := $(VENV)/.installed
PIP_INSTALL_ARGS ?=
PYTEST_ARGS ?=
DEMO_ARGS   ?=

ENGINE_DEPS := $(wildcard engine/src/*.cpp engine/src/*.h engine/src/*.hpp engine/include/*.h)

.PHONY: help venv install test demo clean distclean

help:
	@echo "optbench make targets:"
	@echo "  make demo      install if needed, then run experiments/quick.toml and write its report (DEMO_ARGS=...)"
	@echo "  make test      install if needed, then run the test suite (PYTEST_ARGS=...)"
	@echo "  make install   build the C++ engine and install optbench editable into $(VENV)"
	@echo "  make venv      create $(VENV) (python3.11, else python3 >= 3.11)"
	@echo "  make clean     remove build outputs (keeps $(VENV))"
	@echo "  make distclean clean, and remove $(VENV) too"

$(VPY):
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python >= 3.11 required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

venv: $(VPY)

$(STAMP): pyproject.toml CMakeLists.txt $(ENGINE_DEPS) | $(VPY)
	$(PIP) install $(PIP_INSTALL_ARGS) -e ".[test]"
	@touch $@

install: $(STAMP)

test: install
	$(VPY) -m pytest -q $(PYTEST_ARGS) tests

demo: install
	$(VENV)/bin/optbench run experiments/quick.toml $(DEMO_ARGS)

clean:
	rm -rf build dist _skbuild *.egg-info .pytest_cache
	rm -rf CMakeFiles CMakeCache.txt CMakeInit.txt .cmake .skbuild-info.json cmake_install.cmake \
	       build.ninja .ninja_deps .ninja_log install_manifest.txt compile_commands.json
	rm -f optbench/libmlipc.so $(STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
