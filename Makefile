# The two commands: `make demo` and `make test`. Each sets up what it needs, idempotently.
.PHONY: setup demo test bench models-test models-all clean

VENV := .venv
PARLEY := $(VENV)/bin/parley

setup:
	@bash scripts/setup.sh

models-test: setup
	@$(PARLEY) models fetch --for test

models-all: setup
	@$(PARLEY) models fetch

demo: models-all
	@$(PARLEY) doctor
	@$(PARLEY) demo

test: models-test
	@$(VENV)/bin/python -m pytest -q

bench:
	@EXTRAS=test,bench bash scripts/setup.sh
	@$(PARLEY) models fetch --for test
	@$(VENV)/bin/python -m pytest tests/bench --benchmark-only --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds

clean:
	rm -rf build $(VENV) .stamps core/*.c core/*.so
