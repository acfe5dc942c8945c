"""What every target database must provide, and the behaviour most of them share.

The loader (order, verification, one transaction per export, exactly-once records) is
written once; what differs between targets is asked of the target's `TargetDialect`, one
module per database beside this one: how to connect, which column type each portable type
becomes, how staged CSV text becomes a typed value in SQL, how a member's records reach
the table (bulk paths), how rows are merged by key, how one load at a time is enforced.

Adding a target: one module with a subclass overriding what differs, its row in
`tidegate.load.targets.DIALECTS`, and its column in the type matrix (docs/types.md).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from tidegate.formats.manifest import TableEntry
from tidegate.formats.tableschema import ColumnSchema, TableSchema, base_type, type_size
from tidegate.load import staging
from tidegate.load.archive import ExportArchive
from tidegate.sources.base import ServerLock

Parse = Callable[[Any], Any]
"""Turns one exported value into the value written to a target column."""


class TargetDialect:
    """A target database's differences from the rest.

    Attributes:
        name: the database kind's one name ("postgresql", "sqlite", "duckdb", "mysql").
        opens_file: the URL names a local file that connecting would create.
        load_lock: the statements of the lock that keeps loads one at a time; None where
            the database locks itself (a file a single writer holds).
        place_sql: a SELECT naming the database (and schema) a connection writes to, for
            the lock's name: loads into two databases of one server never wait for each
            other.
        schema_sql: the SQL expression of the schema that unqualified tables go in.
        partitioned: `target-ddl --partitioned` can partition tables here.
        folds_table_names: table names that differ only in case name one table.
        folds_column_names: the same for column names (all but PostgreSQL).
        applies_runs_in_sql: entity runs are applied set-based in SQL (load/entitysql.py:
            the target parses the records' JSON itself).
    """

    name: ClassVar[str] = ""
    opens_file: ClassVar[bool] = False
    folds_table_names: ClassVar[bool] = False  # "Case" and "case" name one table
    folds_column_names: ClassVar[bool] = True  # "A" and "a" name one column
    load_lock: ClassVar[ServerLock | None] = None
    place_sql: ClassVar[str] = ""
    schema_sql: ClassVar[str] = "current_schema()"
    partitioned: ClassVar[bool] = False
    applies_runs_in_sql: ClassVar[bool] = False

    # --- connecting -------------------------------------------------------------------

    def make_engine(self, url: URL) -> Engine:
        """The engine of a target URL (driver already chosen; see `tidegate.urls`). JSON
        documents are written by orjson, every decimal digit kept."""
        if self.opens_file and url.database and url.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
        return sa.create_engine(url, json_serializer=exact_json)

    def sql_dialect(self) -> sa.engine.Dialect:
        """SQLAlchemy's dialect, to print DDL without connecting."""
        from sqlalchemy.dialects import registry

        loaded: Any = registry.load(self.name)
        return loaded()  # type: ignore[no-any-return]

    def lock_name(self, place: str) -> str:
        """The name of the load lock of one target database (and schema)."""
        return f"tidegate-load:{place}"

    # --- tables -----------------------------------------------------------------------

    def column_type(self, portable: str, *, in_key: bool = False) -> Any:
        """The SQLAlchemy type a portable type becomes in this target (one it holds:
        `refusal` says which it does not)."""
        kind = base_type(portable)
        size = type_size(portable)
        if kind == "numeric":
            return sa.Numeric(size[0], size[1]) if size else self.unconstrained_numeric()
        if kind == "text":
            return sa.String(size[0]) if size else self.text_type(in_key=in_key)
        if kind == "varbit":
            return _Bits(size[0] if size else None)
        return {
            "boolean": sa.Boolean(),
            "smallint": sa.SmallInteger(),
            "integer": sa.Integer(),
            "bigint": sa.BigInteger(),
            "float": sa.Double(),
            "timestamp": sa.DateTime(),
            "timestamptz": sa.DateTime(timezone=True),
            "date": sa.Date(),
            "time": sa.Time(),
            "timetz": sa.Time(timezone=True),
            "interval": sa.Interval(),
            "duration": sa.Interval(),
            "uuid": sa.Uuid(as_uuid=False),
            "binary": sa.LargeBinary(),
            "json": sa.JSON(none_as_null=True),
        }[kind]

    def refusal(self, portable: str) -> str | None:
        """Why this target cannot hold every value of a portable type exactly, or None
        when it can. A load refuses such a column before it writes anything."""
        return None

    def unconstrained_numeric(self) -> Any:
        """The type of a numeric column without precision."""
        return sa.Numeric()

    def text_type(self, *, in_key: bool) -> Any:
        """The type of a text column without a length."""
        return sa.Text()

    def key_constraint(self, schema: TableSchema) -> sa.schema.SchemaItem:
        """What makes the table's key unique: its primary key (none for a keyless table,
        which may hold equal rows)."""
        return sa.PrimaryKeyConstraint(*schema.primary_key)

    def table_options(self, schema: TableSchema, *, partitioned: bool) -> dict[str, Any]:
        """Dialect options of a target table (partitioning, where asked and possible)."""
        return {}

    def partition_statements(self, schema: TableSchema, table: sa.Table) -> list[str]:
        """Statements that create a partitioned table's partitions, after it."""
        return []

    def alter_columns(self, conn: Connection, table: sa.Table, columns: Sequence[str]) -> None:
        """Give `columns` of an existing table the types and NULL-ness `table` declares (a
        source column widened, or its NOT NULL dropped: tables/drift.py), keeping its rows."""
        preparer = conn.dialect.identifier_preparer
        for name in columns:
            column = table.c[name]
            alter = f"ALTER TABLE {preparer.format_table(table)} ALTER COLUMN "
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"{alter}{preparer.format_column(column)} TYPE {kind}")
            if column.nullable:
                conn.exec_driver_sql(f"{alter}{preparer.format_column(column)} DROP NOT NULL")

    def column_names(self, conn: Connection, table: str) -> list[str]:
        """A table's column names (asked of information_schema, which every server has;
        DuckDB's SQLAlchemy dialect cannot reflect columns)."""
        query = sa.text(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_name = :table AND table_schema = {self.schema_sql}"
        )
        return [str(row[0]) for row in conn.execute(query, {"table": table})]

    # --- values: staged CSV text to typed values, in SQL ------------------------------

    def staged_type(self, column: ColumnSchema) -> Any:
        """The staging column's type: text (the database converts it in SQL)."""
        return sa.Text()

    def empty_as_null(self, staged: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """NULL for the empty string, else the value."""
        return sa.func.nullif(staged, "")

    def converted(
        self, staged: sa.ColumnElement[Any], column: ColumnSchema, target_type: Any
    ) -> sa.ColumnElement[Any]:
        """The expression turning a staged text value into the target column's value.

        A text is staged as it was exported: NULL (an empty field) or the text (`""` is
        the empty string); in a NOT NULL text column NULL is the empty string (exports
        of tidegate 0.1 wrote both as an empty field). Bytes and bit strings keep their
        empty value apart from NULL the same way; any other kind's empty value is NULL."""
        kind = base_type(column.type)
        if kind == "text":
            return staged if column.nullable else sa.func.coalesce(staged, "")
        if kind == "binary":
            return self.from_hex(staged)  # "" is empty bytes, an empty field NULL
        if kind == "varbit":
            return self.cast(staged, kind, target_type)  # "" is an empty bit string
        return self.cast(self.empty_as_null(staged), kind, target_type)

    def refresh_statistics(self, conn: Connection, tables: Sequence[sa.Table]) -> None:
        """Let the planner know tables that grew inside the load's transaction (a planner
        that takes a new table for empty scans it on every lookup by key: quadratic)."""

    def from_hex(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """Bytes from their hex text."""
        return sa.func.unhex(value)

    def cast(
        self, value: sa.ColumnElement[Any], kind: str, target_type: Any
    ) -> sa.ColumnElement[Any]:
        """A non-empty staged text of a portable `kind` as the target column's value."""
        return sa.cast(value, target_type)

    def entity_parser(self, kind: str, parse: Parse) -> Parse:
        """The Python conversion of an entity record's value of `kind` (values.py's
        `parse`, unless the target's driver needs the value in another form)."""
        return parse

    # --- loading rows made in Python (entity records) ----------------------------------

    def delete_keys(
        self, conn: Connection, table: sa.Table, columns: Sequence[str], keys: list[tuple[Any, ...]]
    ) -> None:
        """Delete the rows whose leading key columns `columns` hold one of `keys` (the rows
        of some entities, from one of their tables: the table's primary key begins with
        those columns, and its index finds them)."""
        key_columns = [table.c[c] for c in columns]
        if len(key_columns) == 1:
            match = key_columns[0].in_([key[0] for key in keys])
        else:
            match = sa.tuple_(*key_columns).in_(keys)
        conn.execute(table.delete().where(match))

    def insert_rows(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows given as Python values, one per column of `table` (an executemany;
        a target with a faster bulk path for them overrides it)."""
        conn.execute(table.insert(), rows)

    # --- loading a table member -------------------------------------------------------

    def load_rows(
        self,
        conn: Connection,
        table: sa.Table,
        archive: ExportArchive,
        files_rows: str,
        schema: TableSchema,
        entry: TableEntry,
    ) -> None:
        """Merge a member's rows into `table` by key (`entry.whole`: the table was just
        emptied, and the member holds all of it): staged as text, then one upsert."""
        columns = [c.name for c in schema.columns]
        stage = self.stage(conn, archive, files_rows, schema, columns, entry.rows)
        if entry.rows:
            self.merge(conn, table, stage, schema, f"{archive.where}/{files_rows}")
        stage.drop(conn)

    def merge(
        self, conn: Connection, table: sa.Table, stage: sa.Table, schema: TableSchema, where: str
    ) -> None:
        """Upsert the staged rows into the table. A value the target refuses is one line
        naming the column: the upsert runs in a savepoint, and after a refusal each
        column's conversion is tried on its own until one fails."""
        try:
            with conn.begin_nested():
                conn.execute(self.upsert(table, stage, schema))
        except sa.exc.DBAPIError as error:
            column = staging.named_column(str(error.orig), schema) or self._failing_column(
                conn, table, stage, schema
            )
            raise staging.refusal(where, schema, error, column) from None

    def _failing_column(
        self, conn: Connection, table: sa.Table, stage: sa.Table, schema: TableSchema
    ) -> ColumnSchema | None:
        """The first column whose staged values the target cannot convert, each tried in
        a savepoint of its own."""
        for column in schema.columns:
            converted = self.typed(stage, table, schema, column.name)
            try:
                with conn.begin_nested():
                    conn.execute(sa.select(sa.func.count(converted)).select_from(stage))
            except sa.exc.DBAPIError:
                return column
        return None

    def stage(
        self,
        conn: Connection,
        archive: ExportArchive,
        member: str,
        schema: TableSchema,
        columns: Sequence[str],
        expected: int,
    ) -> sa.Table:
        """A temporary table holding a member's records as text; their count checked."""
        stage = staging.new_stage(conn, [(c, self.staged_type(schema.column(c))) for c in columns])
        staging.counted(
            archive,
            member,
            expected,
            lambda: self.fill_stage(conn, stage, archive, member, columns),
            schema,
        )
        return stage

    def fill_stage(
        self,
        conn: Connection,
        stage: sa.Table,
        archive: ExportArchive,
        member: str,
        columns: Sequence[str],
    ) -> int:
        """Write a member's records into the stage; the number of records."""
        return staging.insert_records(conn, stage, archive, member, columns)

    def typed(
        self, stage: sa.Table, table: sa.Table, schema: TableSchema, column: str
    ) -> sa.ColumnElement[Any]:
        """A staged column as the target column's values."""
        return self.converted(stage.c[column], schema.column(column), table.c[column].type)

    def upsert(self, table: sa.Table, stage: sa.Table, schema: TableSchema) -> sa.Executable:
        """INSERT the staged rows, updating rows whose key exists (`ON CONFLICT`)."""
        from sqlalchemy.dialects import postgresql  # SQLite's and DuckDB's agree with it

        columns = [c.name for c in schema.columns]
        rows = sa.select(*[self.typed(stage, table, schema, c) for c in columns])
        insert = postgresql.insert(table).from_select(columns, rows)
        if not schema.primary_key:  # loaded whole into the emptied table: nothing to merge
            return insert
        merged: sa.Executable = staging.on_conflict(insert, columns, list(schema.primary_key))
        return merged


def rebuild(conn: Connection, table: sa.Table) -> None:
    """Make `table` again as it now declares (types, NULL-ness, key), its rows copied: for
    what the database cannot alter in place."""
    preparer = conn.dialect.identifier_preparer
    temporary = f"tidegate_rebuild_{hashlib.sha1(table.name.encode()).hexdigest()[:16]}"
    new = table.to_metadata(sa.MetaData(), name=temporary)
    new.drop(conn, checkfirst=True)  # a rebuild that died half-way (DDL may not roll back)
    new.create(conn)
    names = [c.name for c in table.columns]
    conn.execute(new.insert().from_select(names, sa.select(*[table.c[n] for n in names])))
    table.drop(conn)
    conn.exec_driver_sql(
        f"ALTER TABLE {preparer.format_table(new)} RENAME TO {preparer.quote(table.name)}"
    )


def exact_json(document: Any) -> str:
    """A JSON document as text, its numbers (Decimals, read from the export, and integers
    of any size) with every digit they had."""
    try:
        return orjson.dumps(document, default=_number_text).decode()
    except TypeError:  # an integer past 64 bits, which orjson refuses before `default`
        return orjson.dumps(_wide_integers(document), default=_number_text).decode()


def _number_text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"not JSON: {type(value).__name__}")


def _wide_integers(document: Any) -> Any:
    """The document with its integers written as their digits."""
    if isinstance(document, dict):
        return {key: _wide_integers(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_wide_integers(value) for value in document]
    if isinstance(document, int) and not isinstance(document, bool):
        return orjson.Fragment(str(document))
    return document


class _Bits(sa.types.UserDefinedType[Any]):
    """A string of bits: BIT(n), or BIT VARYING without a length (PostgreSQL's names)."""

    cache_ok = True

    def __init__(self, length: int | None) -> None:
        self.length = length

    def get_col_spec(self, **_: Any) -> str:
        return f"BIT({self.length})" if self.length else "BIT VARYING"


def without_utc_offset(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A UTC date-time's text without its `+00:00` or `+00`, for a target that stores UTC
    date-times without a zone."""
    length = sa.func.length(value)
    return sa.case(
        (value.like("%+00:00"), sa.func.substr(value, 1, length - 6)),
        (value.like("%+00"), sa.func.substr(value, 1, length - 3)),
        else_=value,
    )
