"""Applying one table-export folder to the target, inside the caller's transaction.

For each table in the export: its CSV is staged as text in a temporary table (PostgreSQL:
`COPY` of the CSV bytes as they come out of the zip; elsewhere, bulk inserts of the parsed
fields), then merged by primary key in one set-based statement that also converts the
text to the columns' types (casts.py): `INSERT … SELECT … ON CONFLICT DO UPDATE`, or
`ON DUPLICATE KEY UPDATE` on MariaDB. Deleted keys are staged the same way and deleted in
one statement. A table exported whole (a snapshot) replaces the table's rows. Any error (a
CSV that does not match its header, a value its column cannot hold, a member whose sha1
fails) raises before the transaction commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.errors import LoadError
from tidegate.formats.manifest import Manifest
from tidegate.formats.tableschema import TableSchema
from tidegate.load.archive import ExportArchive
from tidegate.load.casts import converted, staged_type

BATCH_ROWS = 10_000


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
    where = f"{archive.where}/{member}"
    try:
        if dialect == "postgresql":
            count = _copy(conn, stage, archive, member, columns)
        else:
            count = _insert(conn, stage, archive, member, schema, columns)
    except sa.exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise LoadError(f"{where}: {reason}", "the export was altered: export it again") from None
    if count != expected:
        raise LoadError(f"{where}: {count} records, its manifest says {expected}")
    return stage


def _copy(
    conn: Connection, stage: sa.Table, archive: ExportArchive, member: str, columns: Sequence[str]
) -> int:
    """PostgreSQL: the member's bytes straight into COPY (the server parses the CSV)."""
    chunks = archive.body(member, columns)
    preparer = conn.dialect.identifier_preparer
    names = ", ".join(preparer.quote(c) for c in columns)
    statement = f"COPY {preparer.format_table(stage)} ({names}) FROM STDIN (FORMAT csv)"
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(statement) as copy:
            for chunk in chunks:
                copy.write(chunk)
        return int(cursor.rowcount)


def _insert(
    conn: Connection,
    stage: sa.Table,
    archive: ExportArchive,
    member: str,
    schema: TableSchema,
    columns: Sequence[str],
) -> int:
    """Other targets: the CSV parsed here, its fields inserted as they are (hex turned into
    bytes for SQLite's binary columns)."""
    where = f"{archive.where}/{member}"
    records = archive.records(member)
    header = next(records, None)
    if header != list(columns):
        raise LoadError(
            f"{where}: its header {header!r} is not the table's columns {list(columns)!r}",
            "the export was altered: export it again",
        )
    binary = [i for i, c in enumerate(columns) if isinstance(stage.c[c].type, sa.LargeBinary)]
    count, batch = 0, []
    for number, record in enumerate(records, start=1):
        if len(record) != len(columns):
            raise LoadError(
                f"{where}: record {number} has {len(record)} fields, not {len(columns)}"
            )
        for index in binary:
            try:
                record[index] = bytes.fromhex(record[index]) if record[index] else None  # type: ignore[call-overload]
            except ValueError:
                raise LoadError(
                    f"{where}: record {number}: not hex: {record[index][:40]!r}"
                ) from None
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
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        # SQLite needs a WHERE to tell an upsert's SELECT from a join's ON.
        upsert: Any = sqlite.insert(table).from_select(columns, rows.where(sa.true()))
    else:  # PostgreSQL and DuckDB
        from sqlalchemy.dialects import postgresql

        upsert = postgresql.insert(table).from_select(columns, rows)
    if not others:
        merged = upsert.on_conflict_do_nothing(index_elements=key)
    else:
        merged = upsert.on_conflict_do_update(
            index_elements=key, set_={c: upsert.excluded[c] for c in others}
        )
    return merged
