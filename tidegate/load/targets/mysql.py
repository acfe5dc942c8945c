"""MySQL and MariaDB as a target: `GET_LOCK`, `ON DUPLICATE KEY UPDATE`, and types that keep
microseconds (DATETIME(6), TIME(6)).

MariaDB converts text to a column's type on insert (and its CAST would drop DATETIME's
microseconds), so staged values go in as text, but booleans and UTC offsets, which it does
not read.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, Engine

from tidegate.formats.manifest import TableEntry
from tidegate.formats.tableschema import ColumnSchema, TableSchema, base_type, type_size
from tidegate.load.archive import ExportArchive
from tidegate.load.targets.base import (
    Parse,
    TargetDialect,
    exact_json,
    rebuild,
    without_utc_offset,
)
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

    def make_engine(self, url: URL) -> Engine:
        # `LOAD DATA LOCAL INFILE` (fill_stage) needs the client to allow it.
        return sa.create_engine(
            url, json_serializer=exact_json, connect_args={"local_infile": True}
        )

    def load_rows(
        self,
        conn: Connection,
        table: sa.Table,
        archive: ExportArchive,
        files_rows: str,
        schema: TableSchema,
        entry: TableEntry,
    ) -> None:
        """`LOAD DATA LOCAL INFILE … REPLACE INTO` the table itself, each field read into
        a variable and converted by `SET` as the merge from a stage would: no staging
        table. It runs in a savepoint, and anything short of a clean load (a warning: LOAD
        DATA LOCAL turns refusals into warnings; a server refusing local files; an
        error) rolls it back and loads the member through the stage, which names what
        is wrong or loads what a strict insert takes."""
        if not self._loaded_directly(conn, table, archive, files_rows, schema, entry):
            super().load_rows(conn, table, archive, files_rows, schema, entry)

    def _loaded_directly(
        self,
        conn: Connection,
        table: sa.Table,
        archive: ExportArchive,
        member: str,
        schema: TableSchema,
        entry: TableEntry,
    ) -> bool:
        columns = [c.name for c in schema.columns]
        with tempfile.NamedTemporaryFile(prefix="tidegate-", suffix=".tsv") as spool:
            count = _spooled(archive, member, columns, spool)
            if count != entry.rows:
                return False  # the stage's load says so, in the same words as elsewhere
            if not count:
                return True
            preparer = conn.dialect.identifier_preparer
            fields = [f"@tidegate_{number}" for number in range(len(columns))]
            sets = ", ".join(
                f"{preparer.quote(name)} = {self._compiled(conn, table, schema, name, field)}"
                for name, field in zip(columns, fields, strict=True)
            )
            replace = "REPLACE " if schema.primary_key else ""
            statement = (
                f"LOAD DATA LOCAL INFILE %s {replace}INTO TABLE {preparer.format_table(table)} "
                f"{LOAD_DATA_FORMAT} ({', '.join(fields)}) SET {sets}"
            )
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(statement, (spool.name,))
                    if conn.exec_driver_sql("SELECT @@warning_count").scalar():
                        raise _Warned
            except (_Warned, sa.exc.DBAPIError):
                return False
        return True

    def _compiled(
        self, conn: Connection, table: sa.Table, schema: TableSchema, name: str, field: str
    ) -> str:
        """The SQL converting one LOAD DATA variable to its column, as the merge from the
        stage converts the staged text (`converted`), its constants inlined."""
        value = self.converted(sa.literal_column(field), schema.column(name), table.c[name].type)
        sql = value.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        return str(sql).replace("%", "%%")  # the statement is formatted with its file's name

    def fill_stage(
        self,
        conn: Connection,
        stage: sa.Table,
        archive: ExportArchive,
        member: str,
        columns: Sequence[str],
    ) -> int:
        """The member's records rewritten for `LOAD DATA LOCAL INFILE` (tab-separated,
        `\\N` for NULL, `\\` escapes: LOAD DATA cannot tell NULL from "" in RFC 4180
        CSV), vectorized by Arrow into a temporary file, which MariaDB reads in bulk
        (about 7x the rows/s of `executemany`). A server that refuses local files gets
        the rows by `executemany`, as before."""
        preparer = conn.dialect.identifier_preparer
        with tempfile.NamedTemporaryFile(prefix="tidegate-", suffix=".tsv") as spool:
            count = _spooled(archive, member, columns, spool)
            if not count:
                return 0
            names = ", ".join(preparer.quote(c) for c in columns)
            statement = (
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {preparer.format_table(stage)} "
                f"{LOAD_DATA_FORMAT} ({names})"
            )
            try:
                conn.exec_driver_sql(statement, (spool.name,))
            except sa.exc.OperationalError as error:
                if getattr(error.orig, "args", [None])[0] not in LOCAL_FILES_REFUSED:
                    raise
                return super().fill_stage(conn, stage, archive, member, columns)
            # LOAD DATA LOCAL turns what a strict insert refuses into warnings: with any,
            # the records go by `executemany`, which refuses them in one line, or not.
            if conn.exec_driver_sql("SELECT @@warning_count").scalar():
                conn.execute(stage.delete())
                return super().fill_stage(conn, stage, archive, member, columns)
        return count

    def staged_type(self, column: ColumnSchema) -> Any:
        # Text of any length (TEXT holds 64 KiB): the merge converts it to the column.
        return mysql.LONGTEXT()

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


LOAD_DATA_FORMAT = (
    "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
)


class _Warned(Exception):
    """LOAD DATA left warnings: what it wrote is rolled back."""


def _spooled(archive: ExportArchive, member: str, columns: Sequence[str], spool: Any) -> int:
    """Write a member's records to `spool` as LOAD DATA reads them; their number."""
    count = 0
    for batch in archive.batches(member, columns):
        spool.write(_load_data_lines(batch))
        count += batch.num_rows
    spool.flush()
    return count


# The server's or the client's refusal of `LOAD DATA LOCAL INFILE`.
LOCAL_FILES_REFUSED = (1148, 2068, 3948)
# LOAD DATA's escapes, backslash first (each later one adds backslashes of its own).
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\0", "\\0"))


def _load_data_lines(batch: Any) -> bytes:
    """An Arrow batch of strings as LOAD DATA's lines: fields escaped and tab-separated,
    NULL as `\\N`, each line ending in a newline."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = []
    for column in batch.columns:
        for raw, escaped in _ESCAPES:
            column = pc.replace_substring(column, raw, escaped)
        fields.append(pc.fill_null(column, "\\N"))
    lines = pc.binary_join_element_wise(*fields, "\t")
    return _concatenated(pc.binary_join_element_wise(lines, pa.scalar(""), "\n"))


def _concatenated(lines: Any) -> bytes:
    """Every value of an Arrow string array, end to end (its data buffer, sliced)."""
    import pyarrow as pa

    array = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    assert array.type == pa.string()  # 32-bit offsets: a batch is far below 2 GiB
    offsets = array.buffers()[1]
    first, last = (
        int.from_bytes(offsets[i : i + 4], "little", signed=True)
        for i in (array.offset * 4, (array.offset + len(array)) * 4)
    )
    data: bytes = array.buffers()[2].to_pybytes()
    return data[first:last]


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
