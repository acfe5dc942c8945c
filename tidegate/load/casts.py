"""Exported CSV text turned into typed target values by the target itself, in SQL.

Rows are staged as text (PostgreSQL's COPY takes the CSV as it is), so every conversion is
one expression per column in the statement that merges the staged rows: the database does
it in C, not Python per value. The rules are those of values.py (which converts entity
records in Python): an empty field is NULL, except in a NOT NULL text column.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidegate.formats.tableschema import ColumnSchema, base_type


def staged_type(column: ColumnSchema, dialect: str) -> Any:
    """The staging column's type: text, but bytes for binary on SQLite (which cannot
    turn hex into bytes in SQL before 3.41: those are converted in Python)."""
    if dialect == "sqlite" and base_type(column.type) == "binary":
        return sa.LargeBinary()
    return sa.Text()


def converted(
    staged: sa.ColumnElement[Any], column: ColumnSchema, target_type: Any, dialect: str
) -> sa.ColumnElement[Any]:
    """The expression turning a staged text value into the target column's value."""
    kind = base_type(column.type)
    if kind == "text":
        if column.nullable:
            return _empty_as_null(staged, dialect)
        return sa.func.coalesce(staged, "")
    value = _empty_as_null(staged, dialect) if dialect != "sqlite" or kind != "binary" else staged
    if kind == "boolean" and dialect == "sqlite":  # no boolean type to cast to
        # The field compared with constants once (an empty one matches none: NULL).
        whens: dict[str, Any] = {text: sa.literal_column("1") for text in ("true", "t", "1")}
        whens |= {text: sa.literal_column("0") for text in ("false", "f", "0")}
        return sa.case(whens, value=staged)
    if kind == "boolean" and dialect == "mysql":
        return sa.case(
            (sa.or_(*(value == text for text in ("true", "t", "1"))), sa.literal_column("1")),
            (sa.or_(*(value == text for text in ("false", "f", "0"))), sa.literal_column("0")),
        )
    if kind == "binary":
        if dialect == "sqlite":
            return value
        return sa.func.decode(value, "hex") if dialect == "postgresql" else sa.func.unhex(value)
    if kind == "float" and dialect == "sqlite":
        # SQLite's CAST reads "Infinity" and "NaN" as 0. One `CASE field WHEN …` (the
        # field read once, compared with constants) costs less per row than NULLIF and
        # a comparison per branch.
        return sa.case(
            {
                "": sa.null(),
                "Infinity": sa.literal_column("9e999"),
                "-Infinity": sa.literal_column("-9e999"),
                "NaN": sa.null(),
            },
            value=staged,
            else_=sa.cast(staged, sa.Double()),
        )
    if kind == "timestamptz" and dialect in ("sqlite", "mysql"):
        return _without_utc_offset(value)  # stored as UTC, without a zone
    if dialect in ("sqlite", "mysql"):
        # Both convert text on insert by the column's type (SQLite's affinity; MariaDB's
        # DATETIME(6) keeps microseconds, where its CAST would not).
        return value
    return sa.cast(value, target_type)


def _empty_as_null(staged: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """NULL for the empty string, else the value. SQLite runs `CASE value WHEN '' THEN NULL
    ELSE value END` for less than NULLIF costs (a function call per row); both compare
    with the BINARY collation there."""
    if dialect == "sqlite":
        return sa.case({"": sa.null()}, value=staged, else_=staged)
    return sa.func.nullif(staged, "")


def _without_utc_offset(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    length = sa.func.length(value)
    return sa.case(
        (value.like("%+00:00"), sa.func.substr(value, 1, length - 6)),
        (value.like("%+00"), sa.func.substr(value, 1, length - 3)),
        else_=value,
    )
