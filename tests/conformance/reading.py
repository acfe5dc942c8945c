"""Reading a table's values exactly, from a source or a target, and its column types.

Drivers round some values on the way: psycopg reads a `real` through its 6-9 digit text
and a JSON document into floats, and refuses `infinity` and BC dates; PyMySQL reads a
FLOAT through the 6 digits MariaDB prints; duckdb_engine parses JSON into floats. So each
value is selected the way that keeps it:

- PostgreSQL: its text under fixed settings (`real` through `float8`; `char(n)` as it
  is, padded: its cast to text drops trailing spaces), decoded here by type;
- MariaDB: itself, but FLOAT as DOUBLE (exact: every float is a double);
- DuckDB: itself, but date-times, intervals, UUIDs and JSON as their text;
- SQLite: itself: the driver gives each storage class as it is;
- Iceberg: as pyiceberg's scan gives it in Arrow, each value its Python object (Decimal,
  date, time, datetime, aware in UTC for a timestamptz, bytes, str, bool, int, float),
  which canonical.py reads exactly.

Column types are read as each database prints them (`numeric(10,2)`, `DECIMAL(38,10)`),
an Iceberg table's as Iceberg names them (`decimal(38, 10)`, `timestamptz`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa

from tidegate.load.iceberg import IcebergTarget, is_iceberg

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


class TargetTables(Protocol):
    """A loaded target's tables, read the same way whatever the target is."""

    def types(self, table: str) -> dict[str, str]:
        """Column name -> type, in table order; {} when there is no such table."""
        ...

    def rows(self, table: str) -> list[Row]:
        """Every row, each value as exactly as the target holds it."""
        ...

    def holds_rows(self, table: str) -> bool:
        """Whether the table holds any row (False when there is no such table)."""
        ...


@contextlib.contextmanager
def target_tables(url: str) -> Iterator[TargetTables]:
    """The tables of the target at `url`: a SQL database or an Iceberg warehouse."""
    tables = IcebergTables(url) if is_iceberg(url) else SqlTables(url)
    try:
        yield tables
    finally:
        tables.close()


class SqlTables:
    """A SQL target's tables, through one engine (disposed on close: DuckDB files lock
    themselves)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def types(self, table: str) -> dict[str, str]:
        return column_types(self.engine, table)

    def rows(self, table: str) -> list[Row]:
        return read_rows(self.engine, table)

    def holds_rows(self, table: str) -> bool:
        if not self.types(table):
            return False
        with self.engine.connect() as conn:
            sql = f"SELECT count(*) FROM {quoted(self.engine, table)}"
            return conn.exec_driver_sql(sql).scalar() != 0

    def close(self) -> None:
        self.engine.dispose()


class IcebergTables:
    """An Iceberg warehouse's tables in tidegate's namespace, read by pyiceberg."""

    def __init__(self, url: str) -> None:
        self.target = IcebergTarget(url)

    def _table(self, name: str) -> Any:
        """The Iceberg table, or None (a load that stopped may not have made its
        namespace either)."""
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        try:
            return self.target.catalog.load_table((self.target.namespace, name))
        except (NoSuchTableError, NoSuchNamespaceError):
            return None

    def types(self, table: str) -> dict[str, str]:
        held = self._table(table)
        fields = held.schema().fields if held is not None else ()
        return {field.name: str(field.field_type) for field in fields}

    def rows(self, table: str) -> list[Row]:
        held = self._table(table)
        return held.scan().to_arrow().to_pylist() if held is not None else []

    def holds_rows(self, table: str) -> bool:
        return bool(self.rows(table))

    def close(self) -> None:
        self.target.catalog.close()  # the SQL catalog's engine, which holds its file open
        self.target.dispose()
