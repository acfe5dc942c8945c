"""MySQL and MariaDB as a target: `GET_LOCK`, `ON DUPLICATE KEY UPDATE`, and types that keep
microseconds (DATETIME(6), TIME(6)).

MariaDB converts text to a column's type on insert (and its CAST would drop DATETIME's
microseconds), so staged values go in as text, but booleans and UTC offsets, which it does
not read.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from tidegate.formats.tableschema import TableSchema
from tidegate.load.targets.base import TargetDialect, without_utc_offset
from tidegate.sources.mysql import MySQLSource

PARTITIONS = 8
_SPECIAL = {
    "timestamp": mysql.DATETIME(fsp=6),
    "timestamptz": mysql.DATETIME(fsp=6),
    "time": mysql.TIME(fsp=6),
    "binary": mysql.LONGBLOB(),
}


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
        special = _SPECIAL.get(portable)
        return special if special is not None else super().column_type(portable, in_key=in_key)

    def unconstrained_numeric(self) -> Any:
        return mysql.DECIMAL(65, 30)  # MariaDB's DECIMAL alone is (10,0)

    def text_type(self, *, in_key: bool) -> Any:
        return sa.String(255) if in_key else sa.Text()

    def table_options(self, schema: TableSchema, *, partitioned: bool) -> dict[str, Any]:
        if not partitioned:
            return {}
        dialect = self.sql_dialect()
        keys = ", ".join(str(sa.column(k).compile(dialect=dialect)) for k in schema.primary_key)
        return {"mysql_partition_by": f"KEY ({keys})", "mysql_partitions": str(PARTITIONS)}

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
        others = [c for c in columns if c not in key]
        updates = {c: insert.inserted[c] for c in others} or {key[0]: insert.inserted[key[0]]}
        merged: sa.Executable = insert.on_duplicate_key_update(updates)
        return merged
