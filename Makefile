# One command each on a fresh machine with only Python 3.11: every target
# creates .venv and installs what it needs when missing.
PYTHON_BOOT := $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Re-install when pyproject.toml changes.
INSTALLED := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint ui bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON_BOOT) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(INSTALLED)  ## generate the demo inbox and refresh the warehouse and reports from it
	$(BIN)/infusion-outcomes demo

test: lint  ## lint, then run the test suite
	$(BIN)/python -m pytest -n 2

lint: $(INSTALLED)  ## ruff (lint and format) on the Python, sqlfluff on sql/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint sql --disable-progress-bar

ui: $(INSTALLED)  ## the Dagster UI on http://127.0.0.1:3000 with a persistent instance in .dagster_home
	mkdir -p .dagster_home
	cp -n pipelines/dagster_instance.yaml .dagster_home/dagster.yaml 2>/dev/null || true
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(INSTALLED)  ## refresh at 10k, 100k and 1M patients against DuckDB alone; results in benchmarks/results/
	$(BIN)/python benchmarks/bench.py

clean:  ## remove generated data, the Dagster instance and the virtual environment
	rm -rf data .dagster_home $(VENV)
