# Tideline — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CUSTOMERS ?= 2000
# Each warehouse keeps its runs in its own Dagster instance (.tideline/dagster for the default
# one; see README "Keeping runs apart"); an exported DAGSTER_HOME is shared by all of them.

.PHONY: install manifest run test ui lint bench drill clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## build the dbt manifest the Dagster asset graph is read from
manifest: install
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .

## demo data -> landing zone -> dbt marts -> checks, all through Dagster; prints the summary
run: install
	$(BIN)/tideline demo --customers $(CUSTOMERS)

## the whole test suite
test: install manifest
	$(BIN)/pytest -n auto --dist loadfile --durations=30

## the Dagster UI on http://127.0.0.1:3000 for the default warehouse (runs of `make run` included);
## another warehouse: .venv/bin/tideline ui --warehouse path/to/warehouse.duckdb
ui: install manifest
	$(BIN)/tideline ui

## ruff; sqlfluff on the models and singular tests (dbt templater, compiled against an in-memory DuckDB:
## the profile's `lint` target) and on every macro body (.ci/lint_macros.py: sqlfluff skips macro files)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models $(wildcard dbt_project/tests/*.sql)
	$(BIN)/python .ci/lint_macros.py dbt_project/macros dbt_project/tests/generic

bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.sync
	$(BIN)/python -m bench.campaign --customers 5000000
	$(BIN)/python -m bench.audience_preview
	$(BIN)/python -m bench.journeys

## kill syncs at random points under a fault storm, per destination type (minutes; not in make test)
drill: install
	nice $(BIN)/python -m bench.drill

clean:
	rm -rf .tideline dbt_project/target dbt_project/logs
