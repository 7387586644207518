# One entry point for the toolchain and the tests. `make test` is what CI runs.
# Every target runs from the repository root; the scripts live in tests/tools/.
SHELL := /bin/bash
PY := .venv/bin/python
TOOLS := tests/tools
LAB := $(PY) tests/lab/lab.py

.PHONY: help deps sanity units compat lint changelog-lint build integration test bench bench-smoke \
	lab-up lab-status lab-down demo clean distclean

help:
	@echo "make deps          install Debian packages (as root), .venv and the ansible-test pip stand-in"
	@echo "make test          deps, then sanity, units, compat, lint, build, integration, with a summary"
	@echo "make sanity|units|compat|lint|changelog-lint|build|integration   one step"
	@echo "make compat        module_utils unit tests on Python 3.8-3.11 with cryptography 3.4.8 to newest"
	@echo "                   (venvs cached in .venv-compat/), vermin for Python 3.8, the below-floor check"
	@echo "make bench         every benchmark at full size, ratios to baselines, written to docs/benchmarks.md"
	@echo "make bench-smoke   every benchmark at its smallest size (part of make test): do they still run"
	@echo "make lab-up|lab-status|lab-down|demo                        the local lab fleet"
	@echo "make clean         remove build and test output (distclean also removes .venv and .venv-compat)"

deps:
	$(TOOLS)/bootstrap.sh

sanity: deps
	$(TOOLS)/sanity.sh

units: deps
	$(TOOLS)/units.sh

compat: deps
	$(TOOLS)/compat.sh

lint: deps
	$(TOOLS)/lint.sh all

changelog-lint: deps
	$(TOOLS)/lint.sh changelog

build: deps
	$(TOOLS)/build.sh

integration: deps
	$(TOOLS)/integration.sh

bench: deps
	$(TOOLS)/bench.sh

bench-smoke: deps
	$(TOOLS)/bench.sh --smoke

# Runs every step even when one fails, prints a summary, fails if any failed.
test: deps
	$(TOOLS)/run_all.sh sanity units compat lint build integration bench_smoke

lab-up: deps
	$(LAB) up

lab-status: deps
	$(LAB) status

lab-down: deps
	$(LAB) down

demo: deps
	tests/lab/demo/run.sh

clean:
	rm -rf build tests/output .pytest_cache .ansible
	find . \( -path ./.venv -o -path ./.venv-compat \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv .venv-compat
