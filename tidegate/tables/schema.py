"""The exported tables' definitions, as the loader needs them without access to the source.

Written into every export zip as `tidegate.schema.json`:

    {"format": 1, "schema_version": "<16 hex>",
     "tables": [{"name": "customer", "file": "customer.csv",
                 "primary_key": ["id"],
                 "columns": [{"name": "id", "type": "integer", "sql_type": "INTEGER",
                              "nullable": false}, ...]}]}

`type` is a portable type (below) that a loader maps to its own DDL; `sql_type` is the
source's own spelling, for people. The schema version is a hash of all of it, so a change
of any table, column, type, nullability or key gives a new version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from tidegate.db import Database, type_text
from tidegate.formats.naming import member_name
from tidegate.model import CapturedTable

SCHEMA_FORMAT = 1


@dataclass(frozen=True)
class ColumnSpec:
    """One exported column."""

    name: str
    type: str
    sql_type: str
    nullable: bool


@dataclass(frozen=True)
class TableSpec:
    """One exported table: its columns in order, key, and capture id."""

    table_id: int
    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    table: sa.Table

    @property
    def file(self) -> str:
        return member_name(self.name)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "primary_key": list(self.primary_key),
            "columns": [
                {"name": c.name, "type": c.type, "sql_type": c.sql_type, "nullable": c.nullable}
                for c in self.columns
            ],
        }


def reflect(db: Database, captured: list[CapturedTable]) -> list[TableSpec]:
    """Read the current definition of every captured table, in name order."""
    metadata = sa.MetaData(schema=db.schema)
    specs = []
    for table in sorted(captured, key=lambda t: t.name):
        reflected = sa.Table(table.name, metadata, autoload_with=db.engine)
        columns = tuple(
            ColumnSpec(
                c.name,
                db.dialect.portable_type(c.type),
                type_text(db, c.type),
                bool(c.nullable) and c.name not in table.key_columns,
            )
            for c in reflected.columns
        )
        specs.append(TableSpec(table.table_id, table.name, columns, table.key_columns, reflected))
    return specs


def schema_document(specs: list[TableSpec]) -> tuple[str, bytes]:
    """(schema version, JSON document) for a set of tables."""
    tables = [spec.as_json() for spec in specs]
    version = hashlib.sha1(orjson.dumps(tables, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    document = {"format": SCHEMA_FORMAT, "schema_version": version, "tables": tables}
    return version, orjson.dumps(document, option=orjson.OPT_INDENT_2)
