"""SQLite as a target: a local file that locks itself, loaded by batched INSERTs.

A member's records are inserted `ROWS_PER_INSERT` at a time (an upsert unless the table
was just emptied), their values converted in SQL, run by the driver's `executemany` over
the parsed records, each batch bound as one flat tuple: one statement per batch, not per
record, so its overhead (the driver's reset and binding loop, SQLite's cursor on the
table) is shared by the batch.

A table whose only key is an integer gets it declared INTEGER, so the key is the rowid
(one B-tree, not a table and an index beside it). Such a key never gets NULL: SQLite would
give it a new rowid instead of refusing it.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from tidegate.errors import LoadError
from tidegate.formats.manifest import TableEntry
from tidegate.formats.tableschema import ColumnSchema, TableSchema, base_type, type_size
from tidegate.load import staging
from tidegate.load.archive import ExportArchive
from tidegate.load.targets.base import Parse, TargetDialect, rebuild, without_utc_offset

ROWS_PER_INSERT = 50  # records per INSERT statement (measured: 25-124 alike)
EXACT_REAL_DIGITS = 15  # significant digits a REAL (a double) holds exactly
_AS_TEXT = ("time", "timetz", "interval", "duration", "uuid", "varbit")
_DATES = {"date": "DATE", "timestamp": "DATETIME", "timestamptz": "DATETIME"}
"""Portable types SQLite has no type for: kept as the text the export wrote."""
MAX_PARAMETERS = 999  # the lowest limit a SQLite build may have (before 3.32)


class SQLiteTarget(TargetDialect):
    name = "sqlite"
    opens_file = True
    folds_table_names = True

    def column_type(self, portable: str, *, in_key: bool = False) -> Any:
        kind = base_type(portable)
        if kind in ("smallint", "integer", "bigint"):
            # SQLite's integers are all 64-bit; declared INTEGER, a table's only key column
            # is the rowid itself, so loads and look-ups by key do half the work.
            return sa.Integer()
        size = type_size(portable)
        if kind == "numeric" and (not size or size[0] > EXACT_REAL_DIGITS):
            # A REAL holds 15 significant digits exactly: wider numbers are kept as their
            # text (the declared type gives TEXT affinity), every digit of it.
            return _Spelled("DECIMAL_TEXT")
        if kind in _AS_TEXT:
            return sa.Text()
        if kind in _DATES:
            # As its text: the driver writes a date or date-time in ISO form, and one ISO
            # cannot write (infinity, before year 1) is the export's text of it.
            return _Spelled(_DATES[kind])
        return super().column_type(portable, in_key=in_key)

    def alter_columns(self, conn: Connection, table: sa.Table, columns: Sequence[str]) -> None:
        # SQLite alters no column: an integer or text type widened is the same type here,
        # and a NOT NULL dropped needs the table made again.
        if any(table.c[name].nullable for name in columns):
            rebuild(conn, table)

    def delete_keys(
        self, conn: Connection, table: sa.Table, columns: Sequence[str], keys: list[tuple[Any, ...]]
    ) -> None:
        if len(columns) == 1:
            super().delete_keys(conn, table, columns, keys)
            return
        # SQLite scans the whole table for `(a, b) IN (VALUES …)`, but seeks its index for
        # `(a, b) IN (SELECT a, b FROM t)`: the keys go through a temporary table.
        names = [f"k{i}" for i in range(len(columns))]
        staged = sa.table(f"tidegate_keys_{len(columns)}", *[sa.column(name) for name in names])
        quote = conn.dialect.identifier_preparer.quote
        # Columns without a declared type: no affinity, the keys kept as they are bound.
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {quote(staged.name)} "
            f"({', '.join(quote(name) for name in names)})"
        )
        conn.execute(staged.delete())
        conn.execute(staged.insert(), [dict(zip(names, key, strict=True)) for key in keys])
        match = sa.tuple_(*[table.c[c] for c in columns]).in_(sa.select(*staged.c))
        conn.execute(table.delete().where(match))

    def column_names(self, conn: Connection, table: str) -> list[str]:
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]

    def staged_type(self, column: ColumnSchema) -> Any:
        # SQLite cannot turn hex into bytes in SQL before 3.41: those come converted.
        return sa.LargeBinary() if base_type(column.type) == "binary" else sa.Text()

    def empty_as_null(self, staged: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # `CASE value WHEN '' THEN NULL ELSE value END` costs less than NULLIF (a function
        # call per row); both compare with the BINARY collation here.
        return sa.case({"": sa.null()}, value=staged, else_=staged)

    def converted(
        self, staged: sa.ColumnElement[Any], column: ColumnSchema, target_type: Any
    ) -> sa.ColumnElement[Any]:
        kind = base_type(column.type)
        if kind == "binary":
            return staged  # bytes already, or NULL
        if kind == "boolean":  # no boolean type to cast to: the field compared once
            whens: dict[str, Any] = {text: sa.literal_column("1") for text in ("true", "t", "1")}
            whens |= {text: sa.literal_column("0") for text in ("false", "f", "0")}
            return sa.case(whens, value=staged)
        if kind == "float":
            # SQLite's CAST reads "Infinity" and "NaN" as 0; one `CASE field WHEN …` costs
            # less per row than NULLIF and a comparison per branch. A REAL cannot hold
            # NaN (SQLite stores NULL) or -0 (stored as 0): those are refused.
            refuse = sa.func.tidegate_refuse(column.name, staged)
            number: sa.ColumnElement[Any] = sa.cast(staged, sa.Double())
            return sa.case(
                {
                    "": sa.null(),
                    "Infinity": sa.literal_column("9e999"),
                    "-Infinity": sa.literal_column("-9e999"),
                    "NaN": refuse,
                },
                value=staged,
                else_=sa.case((sa.and_(staged.like("-%"), number == 0), refuse), else_=number),
            )
        if kind == "numeric":
            # SQLite's CAST reads any text, "NaN" or "abc" as 0: a field that cannot be a
            # decimal number (the SQLite source's NUMERIC keeps such text) is refused.
            number = super().converted(staged, column, target_type)
            not_a_number = staged.op("GLOB")("*[^0-9.eE+-]*")
            return sa.case(
                (not_a_number, sa.func.tidegate_refuse(column.name, staged)), else_=number
            )
        return super().converted(staged, column, target_type)

    def entity_parser(self, kind: str, parse: Parse) -> Parse:
        if kind == "numeric":
            return lambda value: str(parse(value))  # every digit, into NUMERIC or text
        if kind == "float":
            return lambda value: _held_float(parse(value))
        if kind == "time":
            return lambda value: str(parse(value))  # a TEXT column (24:00:00 included)
        if kind in _DATES:
            return lambda value: _iso_text(parse(value))
        return parse

    def make_engine(self, url: URL) -> Engine:
        engine = super().make_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _refusals(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.create_function("tidegate_refuse", 2, _refuse, deterministic=True)

        return engine

    def cast(
        self, value: sa.ColumnElement[Any], kind: str, target_type: Any
    ) -> sa.ColumnElement[Any]:
        if kind == "timestamptz":
            return without_utc_offset(value)  # stored as UTC, without a zone
        return value  # SQLite converts text on insert by the column's affinity

    def load_rows(
        self,
        conn: Connection,
        table: sa.Table,
        archive: ExportArchive,
        files_rows: str,
        schema: TableSchema,
        entry: TableEntry,
    ) -> None:
        """The batched INSERTs of the module's docstring; a record with another number of
        fields than the table has columns is refused."""
        from sqlalchemy.dialects import sqlite

        columns = [c.name for c in schema.columns]
        width = len(columns)
        rowid = _rowid_column(conn, table)
        fields = [self._field_sql(table, column, column.name == rowid) for column in schema.columns]
        per = max(1, min(ROWS_PER_INSERT, MAX_PARAMETERS // width))

        def statement(rows: int) -> str:
            # Field i of the batch's record j is parameter ?(j*width+i+1), used as often as
            # its conversion needs.
            values: list[dict[str, Any]] = [
                {
                    name: sa.literal_column(sql.replace(":field", f"?{row * width + number}"))
                    for number, (name, sql) in enumerate(zip(columns, fields, strict=True), start=1)
                }
                for row in range(rows)
            ]
            insert: Any = sqlite.insert(table).values(values).inline()  # no RETURNING
            if not entry.whole:
                insert = staging.on_conflict(insert, columns, schema.primary_key)
            return str(insert.compile(dialect=conn.dialect))

        hexed = [i for i, c in enumerate(schema.columns) if base_type(c.type) == "binary"]
        raw: Any = conn.connection.driver_connection
        where = f"{archive.where}/{files_rows}"

        def run() -> int:
            records = staging.records(archive, files_rows, columns, hexed)
            rest = _Rest()
            with _refused(where, schema):
                raw.executemany(statement(per), _flat_batches(records, width, per, where, rest))
                if rest.tail:
                    raw.execute(
                        statement(len(rest.tail)), tuple(itertools.chain.from_iterable(rest.tail))
                    )
            # Records, not rows changed: an upsert that finds nothing to update (a table
            # that is all key) changes no row, and that record was applied all the same.
            return rest.records

        staging.counted(archive, files_rows, entry.rows, run, schema)

    def _field_sql(self, table: sa.Table, column: ColumnSchema, rowid: bool) -> str:
        """A column's conversion as SQL text, its constants written in, the field it
        converts written `:field` (see `_named_sql`). A rowid key never gets NULL: its
        field goes in as it is (an integer's conversion is the field itself), and NULL
        becomes '', which SQLite refuses there ("datatype mismatch") as it refuses any
        other text that is no integer."""
        text: sa.BindParameter[Any] = sa.bindparam("field")
        conversion = self.converted(text, column, table.c[column.name].type)
        if rowid:
            integer = base_type(column.type) in ("smallint", "integer", "bigint")
            conversion = sa.func.coalesce(text if integer else conversion, "")
        return _named_sql(conversion)


_REFUSED = threading.local()
"""`.value`: (column, value) of the last value `tidegate_refuse` refused in this thread
(SQLite reports only that a function raised, not what it said). Per thread: the function
runs in the thread of the statement, and loads in other threads refuse values of their
own."""


def _refuse(column: str, value: str) -> None:
    """SQL function `tidegate_refuse(column, value)`: stops the statement."""
    _REFUSED.value = (column, value)
    raise ValueError(value)


@contextmanager
def _refused(where: str, schema: TableSchema) -> Iterator[None]:
    """A statement `tidegate_refuse` stopped becomes one line naming the column."""
    _REFUSED.value = None
    try:
        yield
    except sqlite3.OperationalError as error:
        if _REFUSED.value is None:
            raise
        name, value = _REFUSED.value
        column = schema.column(name)
        raise LoadError(
            f"{where}: {column.described(schema.name)}: SQLite's "
            f"{'REAL' if base_type(column.type) == 'float' else 'NUMERIC'} cannot hold {value!r}",
            staging.REFUSAL_HINT,
        ) from error


def _iso_text(value: Any) -> Any:
    """A date or date-time as the text a table export leaves in SQLite: ISO, with a
    space, UTC without its offset."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value.replace("+00", "")  # beyond ISO: PostgreSQL's text of a UTC time


def _held_float(value: float) -> float:
    """A float a REAL holds as it is: not NaN (stored as NULL), not -0 (stored as 0)."""
    if math.isnan(value) or (value == 0 and math.copysign(1, value) < 0):
        raise ValueError(f"SQLite's REAL cannot hold {value}")
    return value


@dataclass
class _Rest:
    """What `_flat_batches` leaves: how many records it read, the last, shorter batch."""

    records: int = 0
    tail: list[list[Any]] = field(default_factory=list)


def _flat_batches(
    records: Iterator[list[Any]], width: int, rows: int, where: str, rest: _Rest
) -> Iterator[tuple[Any, ...]]:
    """The records `rows` at a time, each batch's fields in one flat tuple (all the work
    per record is done in C: slicing, measuring, flattening); a record whose number of
    fields is not `width` is refused; the last batch, if shorter, is left in `rest`."""
    while batch := list(itertools.islice(records, rows)):
        if set(map(len, batch)) != {width}:
            number, record = next((n, r) for n, r in enumerate(batch) if len(r) != width)
            raise LoadError(
                f"{where}: record {rest.records + number + 1} has {len(record)} fields, not {width}"
            )
        rest.records += len(batch)
        if len(batch) < rows:
            rest.tail = batch
            return
        yield tuple(itertools.chain.from_iterable(batch))


def _rowid_column(conn: Connection, table: sa.Table) -> str | None:
    """The column that is a table's rowid, if one is: the table's only key column where
    SQLite keeps no index for the key (declared INTEGER, in a table with rowids)."""
    keys = conn.exec_driver_sql(
        "SELECT name FROM pragma_table_info(?) WHERE pk > 0", (table.name,)
    ).all()
    indexed = conn.exec_driver_sql(
        "SELECT 1 FROM pragma_index_list(?) WHERE origin = 'pk'", (table.name,)
    ).first()
    return str(keys[0][0]) if len(keys) == 1 and indexed is None else None


def _named_sql(expression: sa.ColumnElement[Any]) -> str:
    """A conversion as SQL text, its constants written in and its one parameter (named
    `field`) written `:field`, for the caller to turn into `?<number>`. The text holds no
    identifier and no value from an export (only the conversions' own constants), so that
    replacement cannot hit anything else."""
    from sqlalchemy.dialects import sqlite

    named = sqlite.dialect(paramstyle="named")
    return str(_inline_constants(expression, named).compile(dialect=named))


def _inline_constants(expression: Any, dialect: sa.engine.Dialect) -> Any:
    """The expression with every bound value but the record's field written into its SQL
    as a literal (the conversions' own constants: "", "true", 1, …)."""

    def inline(element: Any, **_: Any) -> Any:
        if isinstance(element, sa.BindParameter) and element.key != "field":
            literal = sa.literal(element.value, element.type)
            text = literal.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            return sa.literal_column(str(text), element.type)
        return None

    return sa.sql.visitors.replacement_traverse(expression, {}, inline)


class _Spelled(sa.types.UserDefinedType[Any]):
    """A declared type by this spelling (SQLite derives a column's affinity from it)."""

    cache_ok = True

    def __init__(self, spelling: str) -> None:
        self.spelling = spelling

    def get_col_spec(self, **_: Any) -> str:
        return self.spelling
