"""The tables an export describes (columns, portable types, keys), read strictly.

Table exports carry `tidegate.schema.json` in their zip; entity runs carry the same table
descriptions in their manifest. A loader creates and migrates target tables from them
without access to the source, so every field is checked: an archive may come from
anywhere.

    {"name": "customer", "file": "customer.csv", "primary_key": ["id"],
     "columns": [{"name": "id", "type": "integer", "sql_type": "INTEGER", "nullable": false}]}
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import orjson

from tidegate.errors import FormatError

# Portable column types: what a loader creates in the target (docs/types.md).
PORTABLE_TYPES = frozenset(
    {
        "boolean",
        "smallint",  # 16-bit
        "integer",  # 32-bit
        "bigint",  # 64-bit
        "float",  # a double
        "numeric",  # exact, any precision
        "timestamp",
        "timestamptz",
        "date",
        "time",  # a time of day, 24:00:00 included
        "timetz",  # a time of day and its UTC offset
        "interval",  # months, days and microseconds (PostgreSQL's interval)
        "duration",  # signed hours, minutes, seconds (MariaDB's TIME)
        "uuid",
        "varbit",  # a string of bits of any length
        "binary",
        "json",
        "text",
    }
)
_SIZED = re.compile(r"(numeric)\((\d{1,4}),(\d{1,4})\)|(varchar)\((\d{1,8})\)|(bit)\((\d{1,8})\)")
_SIZED_KINDS = {"numeric": "numeric", "varchar": "text", "bit": "varbit"}
MAX_TABLES = 10_000
MAX_COLUMNS = 1_600  # PostgreSQL's own limit
MAX_NAME = 255


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type: str
    nullable: bool
    sql_type: str = ""  # the source's own spelling, for messages ("" if not given)

    def described(self, table: str) -> str:
        """How messages name the column: table, column, the source's type and the
        portable type it was exported as."""
        kind = self.type if not self.sql_type else f"{self.sql_type}, exported as {self.type}"
        return f"table {table!r}, column {self.name!r} ({kind})"


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[ColumnSchema, ...]
    primary_key: tuple[str, ...]

    def column(self, name: str) -> ColumnSchema:
        return next(c for c in self.columns if c.name == name)


def base_type(portable: str) -> str:
    """`numeric(12,2)` → `numeric`, `varchar(20)` → `text`, `bit(3)` → `varbit`, others
    as they are."""
    match = _SIZED.fullmatch(portable)
    if match:
        return _SIZED_KINDS[next(group for group in match.groups() if group is not None)]
    return portable


def type_size(portable: str) -> tuple[int, ...]:
    """The numbers in a sized type: `numeric(12,2)` → (12, 2), `varchar(5)` → (5,)."""
    if "(" not in portable:
        return ()
    return tuple(int(part) for part in portable[portable.index("(") + 1 : -1].split(","))


def parse_schema_document(data: bytes, where: str) -> tuple[str, list[TableSchema]]:
    """(schema version, tables) of a `tidegate.schema.json`; `where` names it in errors.

    Raises:
        FormatError: not a valid schema document.
    """
    document = _json(data, where)
    if not isinstance(document, dict) or document.get("format") != 1:
        raise FormatError(f"{where}: not a tidegate schema document (format 1)")
    version = document.get("schema_version")
    if not isinstance(version, str) or not version:
        raise FormatError(f"{where}: no schema_version")
    return version, parse_tables(document.get("tables"), where)


def parse_tables(tables: Any, where: str) -> list[TableSchema]:
    """A list of table descriptions (see the module's example), checked.

    Raises:
        FormatError: a description is missing a field, repeats a name, names an unknown
            type, or its key names a column it does not have.
    """
    if not isinstance(tables, list) or len(tables) > MAX_TABLES:
        raise FormatError(f"{where}: tables must be a list of at most {MAX_TABLES}")
    parsed = [_table(table, where) for table in tables]
    names = [table.name for table in parsed]
    if len(set(names)) != len(names):
        raise FormatError(f"{where}: a table is described twice")
    return parsed


def _table(table: Any, where: str) -> TableSchema:
    if not isinstance(table, dict):
        raise FormatError(f"{where}: a table description is not an object")
    name = _name(table.get("name"), f"{where}: table name")
    columns = table.get("columns")
    if not isinstance(columns, list) or not 0 < len(columns) <= MAX_COLUMNS:
        raise FormatError(f"{where}: table {name!r} needs 1 to {MAX_COLUMNS} columns")
    parsed = tuple(_column(column, f"{where}: table {name!r}") for column in columns)
    names = [c.name for c in parsed]
    if len(set(names)) != len(names):
        raise FormatError(f"{where}: table {name!r} names a column twice")
    key = table.get("primary_key")
    # [] is a table without a key: every export that lists it holds all of it.
    if not isinstance(key, list) or any(k not in names for k in key) or len(set(key)) != len(key):
        raise FormatError(f"{where}: table {name!r} has no primary key made of its columns")
    return TableSchema(name, parsed, tuple(key))


def _column(column: Any, where: str) -> ColumnSchema:
    if not isinstance(column, dict):
        raise FormatError(f"{where}: a column description is not an object")
    name = _name(column.get("name"), f"{where}: column name")
    kind = column.get("type")
    if not isinstance(kind, str) or (kind not in PORTABLE_TYPES and not _SIZED.fullmatch(kind)):
        raise FormatError(f"{where}: column {name!r} has an unknown type {kind!r}")
    nullable = column.get("nullable")
    if not isinstance(nullable, bool):
        raise FormatError(f"{where}: column {name!r} needs nullable true or false")
    sql_type = column.get("sql_type", "")
    if not isinstance(sql_type, str) or len(sql_type) > MAX_NAME:
        raise FormatError(f"{where}: column {name!r} has a bad sql_type")
    return ColumnSchema(name, kind, nullable, sql_type)


def portable_name(name: str) -> bool:
    """Whether a table or column name can travel in export files: 1 to MAX_NAME
    characters, none of them a control character. The exporter refuses other names at
    `init`; the loader refuses them in a schema."""
    return 0 < len(name) <= MAX_NAME and not any(unicodedata.category(c) == "Cc" for c in name)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not portable_name(value):
        raise FormatError(f"{what} must be 1 to {MAX_NAME} printable characters: {value!r}")
    return value


def _json(data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise FormatError(f"{where}: not valid JSON ({error})") from None
