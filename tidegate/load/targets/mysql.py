"""MySQL and MariaDB as a target: `GET_LOCK`, `ON DUPLICATE KEY UPDATE`, and types that keep
microseconds (DATETIME(6), TIME(6)).

MariaDB converts text to a column's type on insert (and its CAST would drop DATETIME's
microseconds), so staged values go in as text, but booleans and UTC offsets, which it does
not read.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection

from tidegate.formats.tableschema import TableSchema, base_type, type_size
from tidegate.load.targets.base import Parse, TargetDialect, rebuild, without_utc_offset
from tidegate.sources.mysql import MySQLSource

PARTITIONS = 8
_SPECIAL = {
    "timestamp": mysql.DATETIME(fsp=6),
    "timestamptz": mysql.DATETIME(fsp=6),
    "time": mysql.TIME(fsp=6),
    "duration": mysql.TIME(fsp=6),
    "binary": mysql.LONGBLOB(),
}
KEY_COLLATION = "utf8mb4_nopad_bin"
"""Text keys compare as bytes, trailing spaces included, as PostgreSQL and SQLite compare
them (utf8mb4_bin alone still ignores trailing spaces)."""
MAX_KEY_BYTES = 3072  # InnoDB's longest index key
MAX_DIGITS, MAX_SCALE = 65, 30
_FIXED_BYTES = {"boolean": 1, "smallint": 2, "integer": 4, "bigint": 8, "float": 8, "date": 3}


class MySQLTarget(TargetDialect):
    name = "mysql"
    load_lock = MySQLSource.server_lock  # the job locks' statements, another name
    place_sql = "SELECT DATABASE()"
    schema_sql = "DATABASE()"
    partitioned = True

    def lock_name(self, place: str) -> str:
        # One namespace for the whole server; 54 characters where MariaDB allows 64.
        digest = hashlib.sha1(super().lock_name(place).encode()).hexdigest()
        return f"tidegate_load:{digest}"

    def column_type(self, portable: str, *, in_key: bool = False) -> Any:
        kind = base_type(portable)
        if kind == "text":
            size = type_size(portable)
            if in_key:
                return (
                    mysql.VARCHAR(size[0], collation=KEY_COLLATION)
                    if size
                    else mysql.TEXT(collation=KEY_COLLATION)
                )
            return mysql.VARCHAR(size[0]) if size else mysql.LONGTEXT()
        if kind == "varbit":  # the bits as text of 0 and 1 (BIT holds 64 at most)
            size = type_size(portable)
            return mysql.VARCHAR(size[0]) if size else mysql.LONGTEXT()
        if kind == "uuid":
            return _Uuid()
        special = _SPECIAL.get(kind)
        return special if special is not None else super().column_type(portable, in_key=in_key)

    def alter_columns(self, conn: Connection, table: sa.Table, columns: Sequence[str]) -> None:
        # A key column widened may need another kind of key (`key_constraint`): made again.
        keys = {c.name for c in table.primary_key} | {
            c.name for i in table.indexes for c in i.columns
        }
        if keys.intersection(columns):
            rebuild(conn, table)
            return
        preparer = conn.dialect.identifier_preparer
        for name in columns:
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            null = "NULL" if column.nullable else "NOT NULL"
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} MODIFY COLUMN "
                f"{preparer.format_column(column)} {kind} {null}"
            )

    def refusal(self, portable: str) -> str | None:
        kind, size = base_type(portable), type_size(portable)
        if kind in ("interval", "timetz"):
            return f"MariaDB has no {kind} type"
        if kind == "numeric" and not size:
            return (
                f"MariaDB's DECIMAL holds at most {MAX_DIGITS} digits, {MAX_SCALE} after the "
                "point, and a numeric without a precision holds any number of them"
            )
        if kind == "numeric" and (size[0] > MAX_DIGITS or size[1] > MAX_SCALE):
            return f"MariaDB's DECIMAL holds {MAX_DIGITS} digits, {MAX_SCALE} after the point"
        return None

    def entity_parser(self, kind: str, parse: Parse) -> Parse:
        if kind == "float":
            return lambda value: _finite(parse(value))
        return parse

    def key_constraint(self, schema: TableSchema) -> sa.schema.SchemaItem:
        """A primary key where InnoDB can index it; else (a text key without a length,
        bytes, or more than 3,072 bytes in all) a unique key USING HASH, which holds keys
        of any length and serves `ON DUPLICATE KEY UPDATE` as well."""
        sizes = [_key_bytes(schema.column(name).type) for name in schema.primary_key]
        if None not in sizes and sum(size or 0 for size in sizes) <= MAX_KEY_BYTES:
            return super().key_constraint(schema)
        return sa.Index("tidegate_key", *schema.primary_key, unique=True, mysql_using="hash")

    def table_options(self, schema: TableSchema, *, partitioned: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"mysql_charset": "utf8mb4"}
        if partitioned and schema.primary_key:  # a keyless table is not partitioned
            dialect = self.sql_dialect()
            keys = ", ".join(str(sa.column(k).compile(dialect=dialect)) for k in schema.primary_key)
            options |= {"mysql_partition_by": f"KEY ({keys})", "mysql_partitions": str(PARTITIONS)}
        return options

    def cast(
        self, value: sa.ColumnElement[Any], kind: str, target_type: Any
    ) -> sa.ColumnElement[Any]:
        if kind == "boolean":
            return sa.case(
                (sa.or_(*(value == text for text in ("true", "t", "1"))), sa.literal_column("1")),
                (sa.or_(*(value == text for text in ("false", "f", "0"))), sa.literal_column("0")),
            )
        if kind == "timestamptz":
            return without_utc_offset(value)  # stored as UTC, without a zone
        return value

    def upsert(self, table: sa.Table, stage: sa.Table, schema: TableSchema) -> sa.Executable:
        columns = [c.name for c in schema.columns]
        key = list(schema.primary_key)
        rows = sa.select(*[self.typed(stage, table, schema, c) for c in columns])
        insert = mysql.insert(table).from_select(columns, rows)
        if not key:  # loaded whole into the emptied table: nothing to merge
            return insert
        others = [c for c in columns if c not in key]
        updates = {c: insert.inserted[c] for c in others} or {key[0]: insert.inserted[key[0]]}
        merged: sa.Executable = insert.on_duplicate_key_update(updates)
        return merged


def _finite(value: float) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"MariaDB's DOUBLE cannot hold {value}")
    return value


def _key_bytes(portable: str) -> int | None:
    """The most bytes a key column of a portable type takes in an index; None where it
    has no bound (a text without a length, bytes, JSON)."""
    kind, size = base_type(portable), type_size(portable)
    if kind == "text":
        return 4 * size[0] if size else None  # utf8mb4: up to 4 bytes a character
    if kind == "numeric":
        return size[0] // 2 + 1 if size else None
    if kind in ("binary", "json"):
        return None
    return _FIXED_BYTES.get(kind, 16)


class _Uuid(sa.types.UserDefinedType[Any]):
    """MariaDB's UUID type (10.7 and later), its values sent as text."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "UUID"
