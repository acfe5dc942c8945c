"""Reading a table's values exactly, from a source or a target, and its column types.

Drivers round some values on the way: psycopg reads a `real` through its 6-9 digit text
and a JSON document into floats, and refuses `infinity` and BC dates; PyMySQL reads a
FLOAT through the 6 digits MariaDB prints; duckdb_engine parses JSON into floats. So each
value is selected the way that keeps it:

- PostgreSQL: its text under fixed settings (`real` through `float8`; `char(n)` as it
  is, padded: its cast to text drops trailing spaces), decoded here by type;
- MariaDB: itself, but FLOAT as DOUBLE (exact: every float is a double);
- DuckDB: itself, but date-times, intervals, UUIDs and JSON as their text;
- SQLite: itself: the driver gives each storage class as it is.

Column types are read as each database prints them (`numeric(10,2)`, `DECIMAL(38,10)`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

Row = dict[str, Any]

# Session settings under which PostgreSQL prints every value the same way, exactly.
PG_SETTINGS = (
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL bytea_output = 'hex'",
    "SET LOCAL lc_monetary = 'C'",
)


def quoted(engine: sa.Engine, table: str, schema: str | None = None) -> str:
    prep = engine.dialect.identifier_preparer
    return (
        f"{prep.quote_identifier(schema)}.{prep.quote_identifier(table)}"
        if schema
        else prep.quote_identifier(table)
    )


def column_types(engine: sa.Engine, table: str, schema: str | None = None) -> dict[str, str]:
    """Column name -> type as the database prints it, in table order; {} when there is no
    such table."""
    readers: dict[str, Callable[[sa.Connection, str, str | None], list[Any]]] = {
        "postgresql": _pg_types,
        "mysql": _mysql_types,
        "mariadb": _mysql_types,
        "duckdb": _duckdb_types,
        "sqlite": _sqlite_types,
    }
    with engine.connect() as conn:
        rows = readers[engine.dialect.name](conn, table, schema)
    return {str(name): str(kind) for name, kind in rows}


def _pg_types(conn: sa.Connection, table: str, schema: str | None) -> list[Any]:
    name = quoted(conn.engine, table, schema)
    return list(
        conn.exec_driver_sql(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            (name,),
        )
    )


def _mysql_types(conn: sa.Connection, table: str, _schema: str | None) -> list[Any]:
    return list(
        conn.exec_driver_sql(
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
    )


def _duckdb_types(conn: sa.Connection, table: str, _schema: str | None) -> list[Any]:
    return list(
        conn.exec_driver_sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            (table,),
        )
    )


def _sqlite_types(conn: sa.Connection, table: str, _schema: str | None) -> list[Any]:
    return list(conn.exec_driver_sql("SELECT name, type FROM pragma_table_info(?)", (table,)))


def read_rows(engine: sa.Engine, table: str, schema: str | None = None) -> list[Row]:
    """Every row of the table, each value as exactly as the database holds it."""
    types = column_types(engine, table, schema)
    dialect = engine.dialect.name
    prep = engine.dialect.identifier_preparer
    selected = [
        _selected(dialect, prep.quote_identifier(name), kind) for name, kind in types.items()
    ]
    sql = f"SELECT {', '.join(selected)} FROM {quoted(engine, table, schema)}"
    with engine.connect() as conn, conn.begin():
        if dialect == "postgresql":
            for setting in PG_SETTINGS:
                conn.exec_driver_sql(setting)
        elif dialect in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET time_zone = '+00:00'")
        elif dialect == "duckdb":
            conn.exec_driver_sql("SET TimeZone = 'UTC'")
        rows = conn.exec_driver_sql(sql).all()
    names = list(types)
    kinds = list(types.values())
    decode = _pg_decoded if dialect == "postgresql" else _as_is
    return [
        {name: decode(value, kind) for name, kind, value in zip(names, kinds, row, strict=True)}
        for row in rows
    ]


def _selected(dialect: str, column: str, kind: str) -> str:
    lowered = kind.lower()
    if dialect == "postgresql":
        if lowered.startswith("character(") or lowered == "character":
            return column  # as stored, padded: a cast to text would drop trailing spaces
        return f"{column}::float8::text" if lowered == "real" else f"{column}::text"
    if dialect in ("mysql", "mariadb") and lowered.startswith("float"):
        return f"CAST({column} AS DOUBLE)"
    if dialect == "duckdb" and lowered.split("(")[0] in _DUCKDB_TEXT:
        return f"CAST({column} AS VARCHAR)"
    return column


_DUCKDB_TEXT = {
    "date",
    "time",
    "time with time zone",
    "timestamp",
    "timestamp with time zone",
    "timestamp_ns",
    "timestamp_ms",
    "timestamp_s",
    "interval",
    "uuid",
    "json",  # duckdb_engine would parse it, numbers into floats
}


def _as_is(value: Any, _kind: str) -> Any:
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


def _pg_decoded(text: str | None, kind: str) -> Any:
    """A PostgreSQL value's text as the Python value its type holds exactly: integers,
    Decimals, floats, booleans, bytes; every other type stays text (date-times included:
    canonical.py reads their text forms, which Python's types cannot all hold)."""
    if text is None or kind.endswith("[]"):
        return text
    base = kind.split("(")[0]
    if base in ("smallint", "integer", "bigint"):
        return int(text)
    if base == "numeric":
        return Decimal(text)
    if base in ("real", "double precision"):
        return float(text)
    if base == "boolean":
        return text == "true"
    if base == "bytea":
        return bytes.fromhex(text[2:])
    return text
