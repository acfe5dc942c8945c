"""Shared pieces of the table-export tests: sample tables, source reads, comparison."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from tests.conftest import Source
from tests.tables.independent_reader import Rebuilt, rebuild

Micro = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
MicroTz = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql")


def sample_tables() -> tuple[sa.Table, sa.Table]:
    """A parent with nasty columns and a child with a composite key."""
    metadata = sa.MetaData()
    parent = sa.Table(
        "parent",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.String(400)),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("big", sa.Numeric(38, 10)),
        sa.Column("ts", Micro),
        sa.Column("tstz", MicroTz),
        sa.Column("flag", sa.Boolean),
        sa.Column("ratio", sa.Double),
        sa.Column("day", sa.Date),
    )
    child = sa.Table(
        "child line",
        metadata,
        sa.Column("parent_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.String(40), primary_key=True),
        sa.Column("qty", sa.Integer),
        sa.Column("note", sa.Text),
    )
    return parent, child


NASTY_TEXT = [
    "plain",
    "a,b",
    'say "hi"',
    "line1\nline2",
    "cr\rand\r\ncrlf",
    "lone\rcr",
    "tab\there",
    "ünïcødé 日本 🎉",
    "x" * 300,
    "trailing   ",
    "",
    None,
    "  leading",
    "'single'",
    ",",
    '"',
    "NULL",
    "\\N",
]


def source_rows(source: Source, table: sa.Table) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every row of a source table as the driver returns it, keyed like the rebuild."""
    engine = source.engine()
    prep = engine.dialect.identifier_preparer
    name = prep.quote_identifier(table.name)
    if source.schema:
        name = f"{prep.quote_identifier(source.schema)}.{name}"
    keys = [c.name for c in table.primary_key.columns]
    with engine.connect() as conn:
        result = conn.exec_driver_sql(f"SELECT * FROM {name}")
        columns = list(result.keys())
        rows = [dict(zip(columns, row, strict=True)) for row in result]
    return {tuple(key_text(row[k]) for k in keys): row for row in rows}


def key_text(value: Any) -> str:
    return str(value)


def matches(text: str, value: Any) -> bool:
    """Does a CSV field hold the value, by the rules of the format?"""
    if value is None or value == "":
        return text == ""
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, int):
        return int(text) == value
    if isinstance(value, float):
        return math.isclose(float(text), value, rel_tol=0, abs_tol=0) or (
            math.isnan(value) and text == "NaN"
        )
    if isinstance(value, Decimal):
        return Decimal(text) == value
    if isinstance(value, dt.datetime):
        return dt.datetime.fromisoformat(text) == value
    if isinstance(value, dt.date):
        return dt.date.fromisoformat(text) == value
    if isinstance(value, bytes | memoryview):
        return bytes.fromhex(text) == bytes(value)
    if isinstance(value, dict | list):
        return json.loads(text) == value
    return text == str(value)


def assert_rebuild_equals_source(source: Source, exports: Path, *tables: sa.Table) -> Rebuilt:
    rebuilt = rebuild(exports)
    for table in tables:
        expected = source_rows(source, table)
        got = rebuilt.tables.get(table.name, {})
        assert set(got) == set(expected), (
            f"{table.name}: keys differ: missing {set(expected) - set(got)}, "
            f"extra {set(got) - set(expected)}"
        )
        for key, row in expected.items():
            for column, value in row.items():
                assert matches(got[key][column], value), (
                    f"{table.name} {key} {column}: exported {got[key][column]!r}, "
                    f"source holds {value!r}"
                )
    return rebuilt
