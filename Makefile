# The two commands of the README. Each sets up everything it needs from a fresh clone:
#   make demo   creates .venv, installs tidegate, runs `tidegate demo`
#   make test   creates .venv, installs tidegate with its dev tools, runs lint and the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests also read each Iceberg table with DuckDB's iceberg extension. PyPI has that
# extension only for DuckDB 1.5.5, not for the newer DuckDB tidegate loads into, so this
# second DuckDB and its extensions (iceberg needs avro; pytz gives DuckDB's timestamptz
# values) go in a folder of their own, which the tests import in a process of their own
# (tests/load/duckdb_iceberg.py).
DUCKDB_ICEBERG := duckdb==1.5.5 duckdb-extension-iceberg==1.5.5 duckdb-extension-avro==1.5.5 pytz

.PHONY: demo test lint pytest bytecode clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --upgrade --target $(VENV)/duckdb-iceberg $(DUCKDB_ICEBERG)
	touch $(STAMP)

# tidegate's modules byte-compiled, as pip compiles an installed package's: an editable
# checkout run with PYTHONDONTWRITEBYTECODE set would compile them in every process (about
# 0.3 s each: the tests start hundreds). Only what changed is compiled again.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q tidegate

demo: bytecode
	$(BIN)/tidegate demo

lint: $(STAMP)
	$(BIN)/ruff check tidegate tests bench scripts
	$(BIN)/ruff format --check tidegate tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/cli_docs.py --check
	$(BIN)/python scripts/type_matrix.py --check

pytest: bytecode
	$(BIN)/python -m pytest

test: lint pytest

clean:
	rm -rf $(VENV) tidegate-demo .pytest_cache .mypy_cache .ruff_cache
