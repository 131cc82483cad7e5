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
DOCKER_ARGS ?=
ASV         := $(VENV)/bin/asv
ASV_ARGS    ?=
DASHBOARD_PORT ?= 8000
# asv asks about the machine on its first run; --yes takes the defaults.
ASV_MACHINE := test -f $(HOME)/.asv-machine.json || $(ASV) machine --yes >/dev/null

ENGINE_DEPS := $(wildcard engine/src/*.cpp engine/src/*.h engine/src/*.hpp engine/include/*.h)

.PHONY: help venv install test demo demo-finetune clean distclean bench bench-compare bench-smoke dashboard docker-check

help:
	@echo "optbench make targets:"
	@echo "  make demo      install if needed, then run experiments/quick.toml and write its report (DEMO_ARGS=...)"
	@echo "  make demo-finetune  fine-tune SevenNet-0 on DFT Mo with 3 optimizers x 2 seeds (experiments/finetune_demo.toml)"
	@echo "  make test      install if needed, then run the test suite (PYTEST_ARGS=...)"
	@echo "  make bench     run the asv suite (benchmarks/) on the working tree in $(VENV); results filed under HEAD (ASV_ARGS=...)"
	@echo "  make bench-compare A=<commit> B=<commit>  build both in virtualenvs, run the suite, list changes (exit 1: B regressed)"
	@echo "  make bench-smoke  every benchmark once (asv run --quick), then the dashboard checked offline (as CI does)"
	@echo "  make dashboard publish the results with vendored JavaScript and serve them on http://127.0.0.1:$(DASHBOARD_PORT)/"
	@echo "  make docker-check  build the Docker image rootless (buildah, Debian base) and compare it with the host (DOCKER_ARGS=--rebuild)"
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

# The tests cover the optional foundation-model extra too (torch 2.13.0 CPU, sevenn, MACE).
# mace-torch 0.3.16 pins e3nn==0.4.4 and sevenn needs e3nn>=0.5: mace-torch goes in without
# its pin (pyproject.toml, extra "mace"; README, "MACE").
MACE_TORCH  ?= mace-torch==0.3.16

$(STAMP): pyproject.toml CMakeLists.txt $(ENGINE_DEPS) | $(VPY)
	$(PIP) install $(PIP_INSTALL_ARGS) -e ".[test,foundation,mace,properties,mpi]"
	$(PIP) install $(PIP_INSTALL_ARGS) --no-deps "$(MACE_TORCH)"
	@touch $@

install: $(STAMP)

test: install
	$(VPY) -m pytest -q $(PYTEST_ARGS) tests

demo: install
	$(VENV)/bin/optbench run experiments/quick.toml $(DEMO_ARGS)

# asv: asv.conf.json; results, html and build environments under .asv/ (git-ignored).
bench: install
	@$(ASV_MACHINE)
	$(ASV) run --environment existing:$(VPY) --set-commit-hash $$(git rev-parse HEAD) $(ASV_ARGS)

bench-compare: install
	@test -n "$(A)" && test -n "$(B)" || { echo "usage: make bench-compare A=<base commit> B=<commit> [ASV_ARGS=...]" >&2; exit 2; }
	@$(ASV_MACHINE)
	$(ASV) continuous $(ASV_ARGS) $(A) $(B)

bench-smoke: install
	$(VPY) benchmarks/smoke.py

# buildah + podman + debootstrap (Debian packages); says "skipped" where they cannot run.
docker-check: install
	$(VPY) scripts/docker_check.py $(DOCKER_ARGS)

dashboard: install
	@test -d .asv/results || { echo "error: no results in .asv/results: run make bench or make bench-compare first" >&2; exit 1; }
	$(ASV) publish
	$(VPY) benchmarks/vendor_dashboard.py .asv/html
	@echo "dashboard: http://127.0.0.1:$(DASHBOARD_PORT)/  (Ctrl-C stops the server)"
	$(VPY) -m http.server --bind 127.0.0.1 --directory .asv/html $(DASHBOARD_PORT)

clean:
	rm -rf build dist _skbuild *.egg-info .pytest_cache
	rm -rf CMakeFiles CMakeCache.txt CMakeInit.txt .cmake .skbuild-info.json cmake_install.cmake \
	       build.ninja .ninja_deps .ninja_log install_manifest.txt compile_commands.json
	rm -f optbench/libmlipc.so $(STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# A small fine-tuning comparison of SevenNet-0 on DFT Mo (needs ../shared): a few minutes.
demo-finetune: install
	$(VENV)/bin/optbench run experiments/finetune_demo.toml $(DEMO_ARGS)
