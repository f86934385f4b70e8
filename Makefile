# Quick start: `make demo` and `make test`. Each creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch (for the `deep` extra) must come from the local CPU wheel on the CPU machines here; elsewhere
# override, e.g. `make install-deep TORCH=torch`.
TORCH ?= torch==2.13.0
# Two workers on the 2-core CI machine; tests that share a problem built once a process carry
# one `xdist_group` and run on the same worker (--dist loadgroup). The 15 slowest tests are listed
# so that the suite's time budget stays visible. `make test PYTEST_ARGS="-n 2 -m 'not slow'"`
# skips the long ones.
PYTEST_ARGS ?= -n 2 --dist loadgroup -q --durations=15
# The benchmark peers pin older libraries (statsforecast: pandas < 3), so they get an environment
# of their own and the test environment keeps the pandas a fresh install resolves.
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python

.PHONY: demo test docs install-deep bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# The test extra holds the reference libraries the tests compare with (filterpy, sktime, ...) but
# not statsforecast, whose pandas < 3 pin would hold the whole suite on pandas 2.
# Two references are installed without their dependency pins, on which they run all the same:
# particles (the SMC reference) pins numpy<2 (it runs on numpy 2 with a current numba); pykalman
# >= 0.10 pins scikit-base < 0.14, which sktime 1.x (pandas 3) excludes, and the pykalman that
# allows it (0.9) fails on numpy 2.4.
$(VENV)/.test: pyproject.toml $(VENV)/.core
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q numba joblib
	$(PIP) install -q --no-deps "particles==0.4" "pykalman>=0.11"
	touch $@

$(VENV)/.docs: pyproject.toml $(VENV)/.core
	$(PIP) install -q -e ".[docs]"
	touch $@

demo: $(VENV)/.core
	$(PY) -m probssm demo --output output

# pytest exits 5 when it collects no test; that is not a failure of the suite.
# The PyTorch tests (tests/deep) run in a pytest process of their own after the JAX tests, so
# that no JAX worker also carries torch and Triton.
test: $(VENV)/.test $(VENV)/.deep
	$(PY) -m pytest $(PYTEST_ARGS) --ignore=tests/deep; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; \
	$(PY) -m pytest -q --durations=5 tests/deep; r=$$?; if [ $$r -ne 0 ] && [ $$r -ne 5 ]; then rc=1; fi; \
	exit $$rc

docs: $(VENV)/.docs
	$(VENV)/bin/mkdocs build --strict --site-dir site

# The deep extra (torch first, from the local CPU wheel, then pyro-ppl) and Triton, whose
# interpreter runs the selective-scan kernel's tests on the CPU.
$(VENV)/.deep: pyproject.toml $(VENV)/.core
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[deep]"
	$(PIP) install -q "triton==3.9.0"
	touch $@

install-deep: $(VENV)/.deep

$(BENCH_VENV)/.bench: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q -e ".[bench]"
	touch $@

bench: $(BENCH_VENV)/.bench
	$(BENCH_PY) benchmarks/kalman_cpu.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) output site .pytest_cache .hypothesis
