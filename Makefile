# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each creates .venv if it is missing and installs the project with pinned dependencies.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: run test test-all clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The main job: all four strategies of the default MoE layer on the default 2x2 system,
# cycle-accurate under Verilator, every output checked against the golden model.
run: $(STAMP)
	$(VENV)/bin/fsedp compare --json results/compare.json --csv results/compare.csv

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS)

# The long tests include system runs under Icarus Verilog (a Debian package: no PyPI build).
test-all: $(STAMP)
	command -v iverilog >/dev/null || apt-get install -y iverilog || (apt-get update && apt-get install -y iverilog)
	$(PY) -m pytest -n $(JOBS) -m "slow or not slow"

clean:
	rm -rf build .pytest_cache
