"""Applying one table-export folder to the target, inside the caller's transaction.

Per table, the text of the CSV turned into the columns' types by the target in SQL
(casts.py), not in Python:

- PostgreSQL, a table exported whole: emptied, then `COPY`ed straight from the zip member;
- SQLite: `INSERT … ON CONFLICT DO UPDATE` (a plain INSERT into an emptied table) of 50
  records a statement, run by the driver over the parsed records;
- otherwise: the records staged as text in a temporary table (PostgreSQL: `COPY`), then
  merged by primary key with `INSERT … SELECT … ON CONFLICT DO UPDATE` (`ON DUPLICATE KEY
  UPDATE` on MariaDB).

Deleted keys are staged the same way and deleted in one statement. Any error (a CSV that
does not match its header, a value its column cannot hold, a member whose sha1 fails, a
record count other than the manifest's) raises before the transaction commits.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.errors import LoadError
from tidegate.formats.manifest import Manifest, TableEntry
from tidegate.formats.tableschema import ColumnSchema, TableSchema, base_type
from tidegate.load.archive import ExportArchive, csv_error
from tidegate.load.casts import converted, staged_type

BATCH_ROWS = 10_000
ROWS_PER_INSERT = 50  # SQLite: records per INSERT statement (measured: 25-124 alike)
SQLITE_MAX_PARAMETERS = 999  # the lowest limit a SQLite build may have (before 3.32)


def apply_folder(
    conn: Connection,
    dialect: str,
    archive: ExportArchive,
    manifest: Manifest,
    tables: dict[str, sa.Table],
) -> int:
    """Merge every table of the export; the number of rows written and deleted."""
    changed = 0
    for files, entry in zip(archive.tables, manifest.tables, strict=True):
        table = tables[files.schema.name]
        if entry.whole:
            conn.execute(table.delete())
        columns = [c.name for c in files.schema.columns]
        binary = any(base_type(c.type) == "binary" for c in files.schema.columns)
        if dialect == "postgresql" and entry.whole and not binary:
            _copy_whole(conn, table, archive, files.rows, files.schema, entry.rows)
        elif dialect == "sqlite":
            _sqlite_rows(conn, table, archive, files.rows, files.schema, entry)
        else:
            stage = _staged(conn, dialect, archive, files.rows, files.schema, columns, entry.rows)
            if entry.rows:
                conn.execute(_upsert(dialect, table, stage, files.schema))
            stage.drop(conn)
        changed += entry.rows
        if entry.deleted:
            key = list(files.schema.primary_key)
            stage = _staged(conn, dialect, archive, files.deleted, files.schema, key, entry.deleted)
            target_key = sa.tuple_(*[table.c[k] for k in key]) if len(key) > 1 else table.c[key[0]]
            staged_key = sa.select(*[_typed(stage, table, files.schema, k, dialect) for k in key])
            conn.execute(table.delete().where(target_key.in_(staged_key)))
            stage.drop(conn)
            changed += entry.deleted
    return changed


def _copy_whole(
    conn: Connection,
    table: sa.Table,
    archive: ExportArchive,
    member: str,
    schema: TableSchema,
    expected: int,
) -> None:
    """PostgreSQL, a table exported whole into a table just emptied: COPY straight into it
    (the server parses and types every value; an empty field in a NOT NULL text column is
    the empty string)."""
    columns = [c.name for c in schema.columns]
    not_null = [c.name for c in schema.columns if base_type(c.type) == "text" and not c.nullable]
    statement = _copy_statement(conn, table, columns, not_null)
    _counted(
        archive,
        member,
        expected,
        lambda: _copy_rows(conn, statement, archive.body(member, columns)),
    )


def _sqlite_rows(
    conn: Connection,
    table: sa.Table,
    archive: ExportArchive,
    member: str,
    schema: TableSchema,
    entry: TableEntry,
) -> None:
    """SQLite: an INSERT of `ROWS_PER_INSERT` records at a time (an upsert unless the table
    was just emptied), their values converted in SQL, run by the driver's `executemany`
    over the parsed records, each batch bound as one flat tuple (field i of the batch's
    record j is parameter ?(j*width+i+1), used as often as its conversion needs; a record
    with another number of fields is refused). One statement per batch, not per record:
    its overhead (the driver's reset and binding loop, SQLite's cursor on the table) is
    shared by the batch. The last, shorter batch gets a statement of its own.

    A key column that is the table's rowid never gets NULL: SQLite would give it a new
    rowid instead of refusing it. An integer key's field goes in unconverted (its
    conversion only turns '' into NULL); any other kind's NULL becomes ''. SQLite refuses
    '' and any other text that is no integer ("datatype mismatch")."""
    from sqlalchemy.dialects import sqlite

    columns = [c.name for c in schema.columns]
    width = len(columns)
    rowid = _rowid_column(conn, table)
    fields = [_field_sql(table, column, column.name == rowid) for column in schema.columns]
    per = max(1, min(ROWS_PER_INSERT, SQLITE_MAX_PARAMETERS // width))

    def statement(rows: int) -> str:
        values: list[dict[str, Any]] = [
            {
                name: sa.literal_column(sql.replace(":field", f"?{row * width + number}"))
                for number, (name, sql) in enumerate(zip(columns, fields, strict=True), start=1)
            }
            for row in range(rows)
        ]
        insert: Any = sqlite.insert(table).values(values).inline()  # no RETURNING
        if not entry.whole:
            insert = _on_conflict(insert, columns, schema.primary_key)
        return str(insert.compile(dialect=conn.dialect))

    hexed = [i for i, c in enumerate(schema.columns) if base_type(c.type) == "binary"]
    raw: Any = conn.connection.driver_connection
    where = f"{archive.where}/{member}"

    def run() -> int:
        records = (
            _records(archive, member, columns, hexed)
            if hexed
            else _checked_reader(archive, member, columns)
        )
        rest = _Rest()
        raw.executemany(statement(per), _flat_batches(records, width, per, where, rest))
        if rest.tail:
            raw.execute(statement(len(rest.tail)), tuple(itertools.chain.from_iterable(rest.tail)))
        # Records, not rows changed: an upsert that finds nothing to update (a table that
        # is all key) changes no row, and that record was applied all the same.
        return rest.records

    _counted(archive, member, entry.rows, run)


def _field_sql(table: sa.Table, column: ColumnSchema, rowid: bool) -> str:
    """A column's conversion (casts.py) as SQL text, its constants written in, the field
    it converts written `:field` (see `_named_sql`)."""
    text: sa.BindParameter[Any] = sa.bindparam("field")
    conversion = converted(text, column, table.c[column.name].type, "sqlite")
    if rowid:
        integer = base_type(column.type) in ("smallint", "integer", "bigint")
        conversion = text if integer else sa.func.coalesce(conversion, "")
    return _named_sql(conversion)


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
    """The column that is a SQLite table's rowid, if one is: the table's only key column
    where SQLite keeps no index for the key (declared INTEGER, in a table with rowids)."""
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
    identifier and no value from an export (only casts.py's own constants), so that
    replacement cannot hit anything else."""
    from sqlalchemy.dialects import sqlite

    named = sqlite.dialect(paramstyle="named")
    return str(_inline_constants(expression, named).compile(dialect=named))


def _inline_constants(expression: Any, dialect: sa.engine.Dialect) -> Any:
    """The expression with every bound value but the record's field written into its SQL
    as a literal (they are casts.py's own constants: "", "true", 1, …)."""

    def inline(element: Any, **_: Any) -> Any:
        if isinstance(element, sa.BindParameter) and element.key != "field":
            literal = sa.literal(element.value, element.type)
            text = literal.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            return sa.literal_column(str(text), element.type)
        return None

    return sa.sql.visitors.replacement_traverse(expression, {}, inline)


def _checked_reader(
    archive: ExportArchive, member: str, columns: Sequence[str]
) -> Iterator[list[str]]:
    """The member's CSV reader itself, past its header (checked against `columns`): no
    Python runs per record (`_flat_batches` checks each one's width in C). Its
    UnicodeDecodeError and csv.Error are the caller's (see `_counted`)."""
    records = archive.reader(member)
    archive.check_header(member, next(records, None), columns)
    return records


def _records(
    archive: ExportArchive, member: str, columns: Sequence[str], hexed: Sequence[int]
) -> Iterator[list[Any]]:
    """A member's records after its header (checked against `columns`), each with as many
    fields as there are columns, the hex at positions `hexed` turned into bytes."""
    where = f"{archive.where}/{member}"
    records = archive.records(member)
    archive.check_header(member, next(records, None), columns)
    width = len(columns)
    for number, record in enumerate(records, start=1):
        if len(record) != width:
            raise LoadError(f"{where}: record {number} has {len(record)} fields, not {width}")
        for index in hexed:
            try:
                record[index] = bytes.fromhex(record[index]) if record[index] else None  # type: ignore[call-overload]
            except ValueError:
                raise LoadError(
                    f"{where}: record {number}: not hex: {record[index][:40]!r}"
                ) from None
        yield record


def _counted(archive: ExportArchive, member: str, expected: int, load: Any) -> None:
    """Run a bulk load; its row count must be the manifest's. A database error (a value
    its column cannot hold) names the member."""
    where = f"{archive.where}/{member}"
    try:
        count = load()
    except sa.exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise LoadError(f"{where}: {reason}", "the export was altered: export it again") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise csv_error(where, error) from None
    except Exception as error:  # the driver's own errors, raised outside SQLAlchemy
        if isinstance(error, LoadError):
            raise
        reason = str(error).strip().splitlines()[0]
        raise LoadError(f"{where}: {reason}", "the export was altered: export it again") from None
    if count != expected:
        raise LoadError(f"{where}: {count} records, its manifest says {expected}")


def _copy_rows(conn: Connection, statement: str, chunks: Iterator[bytes]) -> int:
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(statement) as copy:
            for chunk in chunks:
                copy.write(chunk)
        return int(cursor.rowcount)


def _staged(
    conn: Connection,
    dialect: str,
    archive: ExportArchive,
    member: str,
    schema: TableSchema,
    columns: Sequence[str],
    expected: int,
) -> sa.Table:
    """A temporary table holding a member's records as text; their count checked."""
    stage = sa.Table(
        "tidegate_stage",
        sa.MetaData(),
        *[sa.Column(c, staged_type(schema.column(c), dialect)) for c in columns],
        prefixes=["TEMPORARY"],
    )
    stage.drop(conn, checkfirst=True)
    stage.create(conn)
    if dialect == "postgresql":
        _counted(archive, member, expected, lambda: _copy(conn, stage, archive, member, columns))
    else:
        _counted(
            archive,
            member,
            expected,
            lambda: _insert(conn, stage, archive, member, columns),
        )
    return stage


def _copy(
    conn: Connection, stage: sa.Table, archive: ExportArchive, member: str, columns: Sequence[str]
) -> int:
    """PostgreSQL: the member's bytes straight into COPY (the server parses the CSV)."""
    return _copy_rows(conn, _copy_statement(conn, stage, columns), archive.body(member, columns))


def _copy_statement(
    conn: Connection, table: sa.Table, columns: Sequence[str], not_null: Sequence[str] = ()
) -> str:
    """`COPY table (columns) FROM STDIN` for CSV; an empty field in a `not_null` column is
    the empty string, not NULL."""
    quote = conn.dialect.identifier_preparer.quote
    force = f", FORCE_NOT_NULL ({', '.join(quote(c) for c in not_null)})" if not_null else ""
    names = ", ".join(quote(c) for c in columns)
    table_name = conn.dialect.identifier_preparer.format_table(table)
    return f"COPY {table_name} ({names}) FROM STDIN (FORMAT csv{force})"


def _insert(
    conn: Connection, stage: sa.Table, archive: ExportArchive, member: str, columns: Sequence[str]
) -> int:
    """Other targets: the CSV parsed here, its fields inserted as they are (hex turned into
    bytes for SQLite's binary columns)."""
    hexed = [i for i, c in enumerate(columns) if isinstance(stage.c[c].type, sa.LargeBinary)]
    count, batch = 0, []
    for record in _records(archive, member, columns, hexed):
        batch.append(dict(zip(columns, record, strict=True)))
        if len(batch) >= BATCH_ROWS:
            conn.execute(stage.insert(), batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(stage.insert(), batch)
        count += len(batch)
    return count


def _typed(
    stage: sa.Table, table: sa.Table, schema: TableSchema, column: str, dialect: str
) -> sa.ColumnElement[Any]:
    return converted(stage.c[column], schema.column(column), table.c[column].type, dialect)


def _upsert(dialect: str, table: sa.Table, stage: sa.Table, schema: TableSchema) -> sa.Executable:
    columns = [c.name for c in schema.columns]
    key = list(schema.primary_key)
    rows = sa.select(*[_typed(stage, table, schema, c, dialect) for c in columns])
    others = [c for c in columns if c not in key]
    if dialect == "mysql":
        from sqlalchemy.dialects import mysql

        insert = mysql.insert(table).from_select(columns, rows)
        updates = {c: insert.inserted[c] for c in others} or {key[0]: insert.inserted[key[0]]}
        merged: sa.Executable = insert.on_duplicate_key_update(updates)
        return merged
    from sqlalchemy.dialects import postgresql  # DuckDB's dialect is PostgreSQL's

    merged = _on_conflict(postgresql.insert(table).from_select(columns, rows), columns, key)
    return merged


def _on_conflict(insert: Any, columns: Sequence[str], key: Sequence[str]) -> Any:
    """An INSERT (SQLite's or PostgreSQL's, DuckDB's) that updates a row whose key exists:
    every column but the key, or nothing when the key is all there is."""
    others = [c for c in columns if c not in key]
    if not others:
        return insert.on_conflict_do_nothing(index_elements=list(key))
    return insert.on_conflict_do_update(
        index_elements=list(key), set_={c: insert.excluded[c] for c in others}
    )
