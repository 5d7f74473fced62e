# Two commands for a new user: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= python3.11
# the newest-release legs of `make test-matrix`
PYTHON_NEWEST ?= python3.12 python3.13
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export MPLBACKEND := agg
export PYTHONHASHSEED := 0

.PHONY: demo test lint unit docs tutorials bench test-matrix test-wheel clean

# $(call timed,what,command): says what it runs, runs it, and says how long it took
timed = @echo "== $(1)"; start=$$(date +%s); $(2) && echo "== $(1): done in $$(( $$(date +%s) - start )) s"

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# torch is pinned for the test environment (the CPU build where pip finds it locally); the package needs torch>=2.1.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[test,doc,bench,scvi,genome]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo/run_demo.py --output demo_output

test: $(STAMP) lint unit docs
	@echo "== make test: lint, unit tests and documentation passed"

lint: $(STAMP)
	$(call timed,lint: ruff check and ruff format --check,$(VENV)/bin/ruff check src tests benchmarks tutorials docs demo .ci && $(VENV)/bin/ruff format --check src tests benchmarks demo .ci)

unit: $(STAMP)
	$(call timed,unit tests: pytest (the default suite; slow checks are run with -m slow),$(VENV)/bin/pytest -q)

# Builds the documentation with warnings as errors; myst-nb executes every tutorial on the way (with the inline
# backend: the agg backend exported above would draw no figure).
docs: $(STAMP)
	rm -rf docs/_build docs/generated
	$(call timed,docs: sphinx-build -W (executes every tutorial),env -u MPLBACKEND $(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html)
	$(call timed,docs: every figure of the tutorials is on the built pages,$(PY) docs/check_figures.py docs/_build/html)

# Executes every tutorial in place, so that the committed notebooks show their outputs and figures.
tutorials: $(STAMP)
	$(call timed,tutorials: executing tutorials/*.ipynb in place,cd tutorials && env -u MPLBACKEND ../$(VENV)/bin/jupyter-execute --inplace --timeout=1800 *.ipynb)

# The default suite in fresh environments: Python 3.11 with the lowest declared releases, then the newest releases
# on each of $(PYTHON_NEWEST). Logs with pip freeze and times in matrix-logs/.
test-matrix:
	.ci/matrix lowest $(PYTHON)
	for python in $(PYTHON_NEWEST); do .ci/matrix newest $$python || exit 1; done

# Builds the sdist and wheel, checks them, installs the wheel outside the checkout and runs a smoke test there.
test-wheel: $(STAMP)
	.ci/wheel $(PY) $(PYTHON)

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf docs/_build docs/generated demo_output .pytest_cache dist matrix-logs .venv-*
