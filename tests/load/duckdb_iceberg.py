"""Iceberg tables read by DuckDB's iceberg extension: a third reader beside pyiceberg and
Polars, with a Parquet reader and an Iceberg implementation of its own.

PyPI has the extension (the `duckdb-extension-iceberg` package) only for DuckDB 1.5.5,
while tidegate loads into a newer DuckDB, and one process cannot import both. So `make`
installs DuckDB 1.5.5 and its extensions into a folder of their own in the virtual
environment (the Makefile's DUCKDB_ICEBERG), and each read runs in a Python process that
imports from that folder alone.

The extensions are loaded from the packages' files: nothing is installed into DuckDB's
home folder, and nothing is fetched from the network. The iceberg extension needs the
avro extension (Iceberg's manifests are Avro files); Parquet is built into DuckDB's Python
package, and httpfs is not needed for local files. DuckDB's Python package needs pytz (in
the folder too) to give timestamptz values.

That process prints each row as a line of JSON. A value JSON has no type for goes as an
object naming its Python type, {"decimal": "1.50"}, and is turned back here into that
Python value, so that DuckDB's rows compare exactly with pyiceberg's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

FOLDER = Path(sys.prefix) / "duckdb-iceberg"  # the Makefile's $(VENV)/duckdb-iceberg
REQUIRED = os.environ.get("CI", "").lower() in ("1", "true", "yes")  # as tests/conftest.py

READER = textwrap.dedent(r"""
    import datetime, decimal, json, pathlib, sys
    import duckdb, duckdb_extension_avro, duckdb_extension_iceberg

    def extension(package, name):
        folder = pathlib.Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}"
        return str(folder / f"{name}.duckdb_extension").replace("'", "''")

    def tagged(value):
        if isinstance(value, decimal.Decimal):
            return {"decimal": str(value)}
        if isinstance(value, datetime.datetime):  # before date: a datetime is a date too
            return {"datetime": value.isoformat()}
        if isinstance(value, datetime.date):
            return {"date": value.isoformat()}
        if isinstance(value, datetime.time):
            return {"time": value.isoformat()}
        if isinstance(value, bytes):
            return {"bytes": value.hex()}
        return value  # None, bool, int, str, float (exact: JSON writes a float's repr)

    # Only the extension files named here: none installed or fetched behind our back.
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{extension(duckdb_extension_avro, 'avro')}'")  # iceberg needs it
    con.execute(f"LOAD '{extension(duckdb_extension_iceberg, 'iceberg')}'")
    con.execute("SET TimeZone = 'UTC'")  # timestamptz values in UTC, as pyiceberg gives them
    for number, metadata in enumerate(sys.argv[1:]):
        result = con.execute("SELECT * FROM iceberg_scan(?)", [metadata])
        columns = [column[0] for column in result.description]
        for row in result.fetchall():
            print(json.dumps([number, {c: tagged(v) for c, v in zip(columns, row)}]))
""")

UNTAG: dict[str, Callable[[str], Any]] = {
    "decimal": Decimal,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "bytes": bytes.fromhex,
}


def duckdb_rows(*metadata_locations: str) -> list[list[dict[str, Any]]]:
    """The rows of each Iceberg table, given by its metadata file, as DuckDB reads them:
    one process for them all, as starting it and loading the extensions take most of the
    time. DuckDB failing fails the test, with its error."""
    finished = subprocess.run(
        # -S: no site-packages, so the project's own DuckDB cannot be imported instead
        [sys.executable, "-S", "-c", READER, *metadata_locations],
        env={**os.environ, "PYTHONPATH": str(_folder())},
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        failed = f"DuckDB could not read the Iceberg tables:\n{finished.stderr}"
        pytest.fail(failed, pytrace=False)
    tables: list[list[dict[str, Any]]] = [[] for _ in metadata_locations]
    for line in finished.stdout.splitlines():
        number, row = json.loads(line)
        tables[number].append({column: _untagged(value) for column, value in row.items()})
    return tables


def _folder() -> Path:
    """The folder DuckDB 1.5.5 and its extensions are in; missing, a skip (a failure
    under CI, whose fresh `make` must have installed them)."""
    if not (FOLDER / "duckdb_extension_iceberg").is_dir():
        stamp = f"{Path(sys.prefix).name}/.installed"
        missing = (
            f"{FOLDER} does not hold DuckDB's iceberg extension (a virtual environment set "
            f"up before it was added): run `make -B {stamp}`"
        )
        if REQUIRED:
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    return FOLDER


def _untagged(value: Any) -> Any:
    if isinstance(value, dict):
        [(tag, text)] = value.items()
        return UNTAG[tag](text)
    return value
