"""Comparing a target with its source, table by table, by the load's value rules."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tests.conftest import Source
from tests.load.conftest import TargetDb

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d([ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d(:?\d\d)?)?)?")


def normal(value: Any, *, loose: bool) -> Any:
    """A value as both sides can hold it: '' and NULL alike (the formats cannot tell them
    apart), booleans as integers, numbers as Decimals (as floats when a side is SQLite,
    which keeps NUMERIC as REAL), date-times parsed and in UTC without zone, bytes."""
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | Decimal):
        if isinstance(value, float) and math.isnan(value):
            return "NaN"
        return (
            float(value) if loose else Decimal(repr(value) if isinstance(value, float) else value)
        )
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        # A SQLite target keeps a numeric wider than a double as its text (DECIMAL_TEXT).
        return float(value) if loose else Decimal(value)
    if isinstance(value, str) and _DATE_TIME.fullmatch(value):
        value = (
            dt.datetime.fromisoformat(value) if len(value) > 10 else dt.date.fromisoformat(value)
        )
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.date() if value == dt.datetime.combine(value.date(), dt.time()) else value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


def rows(
    engine: sa.Engine, table: str, key: list[str], *, loose: bool, schema: str = ""
) -> dict[Any, dict[str, Any]]:
    """Every row of a table as the driver returns it, normalised, keyed by `key`."""
    prep = engine.dialect.identifier_preparer
    name = prep.quote(table) if not schema else f"{prep.quote(schema)}.{prep.quote(table)}"
    with engine.connect() as conn:
        result = conn.exec_driver_sql(f"SELECT * FROM {name}")
        columns = list(result.keys())
        found = [dict(zip(columns, row, strict=True)) for row in result]
    normalised = [{c: normal(v, loose=loose) for c, v in row.items()} for row in found]
    return {tuple(str(row[k]) for k in key): row for row in normalised}


def iceberg_rows(url: str, table: str, key: list[str], *, loose: bool) -> dict[Any, dict[str, Any]]:
    """Every row of an Iceberg table as pyiceberg reads it, normalised, keyed by `key`."""
    from tidegate.load.iceberg import IcebergTarget

    found = IcebergTarget(url).read(table).to_pylist()
    normalised = [{c: normal(v, loose=loose) for c, v in row.items()} for row in found]
    return {tuple(str(row[k]) for k in key): row for row in normalised}


def assert_target_equals_source(
    source: Source, target: TargetDb, *tables: str, trimmed: bool = False, key: Sequence[str] = ()
) -> int:
    """With `trimmed`, source texts lose their trailing spaces, as entity records do; `key`
    identifies the rows of a table without a primary key. Returns the number of rows
    compared."""
    loose = "sqlite" in (source.dialect, target.dialect)
    compared = 0
    for table in tables:
        reflected = sa.Table(
            table, sa.MetaData(), schema=source.schema or None, autoload_with=source.engine()
        )
        identity = list(key) or [c.name for c in reflected.primary_key.columns]
        assert identity, f"{table} has no primary key: pass its key"
        want = rows(source.engine(), table, identity, loose=loose, schema=source.schema)
        if trimmed:
            want = {
                k: {c: v.rstrip(" ") or None if isinstance(v, str) else v for c, v in row.items()}
                for k, row in want.items()
            }
        got = (
            iceberg_rows(target.url, table, identity, loose=loose)
            if target.dialect == "iceberg"
            else rows(target.engine(), table, identity, loose=loose)
        )
        assert set(got) == set(want), (
            f"{table}: missing {sorted(set(want) - set(got))[:5]}, "
            f"extra {sorted(set(got) - set(want))[:5]}"
        )
        for row_key, row in want.items():
            for column, value in row.items():
                assert got[row_key][column] == value, (
                    f"{table} {row_key} {column}: target {got[row_key][column]!r}, source {value!r}"
                )
        compared += len(want)
    return compared
