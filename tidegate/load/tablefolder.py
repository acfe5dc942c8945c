"""Applying one table-export folder to the target, inside the caller's transaction.

For each table in the export: its rows are staged in a temporary table (bulk inserts of
converted values), then merged by primary key in one set-based statement (`INSERT … ON
CONFLICT DO UPDATE`, or `ON DUPLICATE KEY UPDATE` on MariaDB); its deleted keys are
staged and deleted in one statement. A table exported whole (a snapshot) replaces the
table's rows. Any error (a CSV that does not match its header, a value its column cannot
hold, a member whose sha1 fails) raises before the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.errors import LoadError
from tidegate.formats.manifest import Manifest, TableEntry
from tidegate.formats.tableschema import TableSchema
from tidegate.load.archive import ExportArchive, TableFiles
from tidegate.load.values import Convert, converter

BATCH_ROWS = 5000


def apply_folder(
    conn: Connection,
    dialect: str,
    archive: ExportArchive,
    manifest: Manifest,
    tables: dict[str, sa.Table],
    zone: tzinfo,
) -> int:
    """Merge every table of the export; the number of rows written and deleted."""
    changed = 0
    for files, entry in zip(archive.tables, manifest.tables, strict=True):
        table = tables[files.schema.name]
        if entry.whole:
            conn.execute(table.delete())
        changed += _merge(conn, dialect, archive, files, table, entry, zone)
        if entry.deleted:
            changed += _delete(conn, dialect, archive, files, table, entry)
    return changed


def _merge(
    conn: Connection,
    dialect: str,
    archive: ExportArchive,
    files: TableFiles,
    table: sa.Table,
    entry: TableEntry,
    zone: tzinfo,
) -> int:
    columns = [c.name for c in files.schema.columns]
    stage = _stage(conn, table, columns, "tidegate_stage")
    count = 0
    for batch in _batches(archive, files.rows, files.schema, columns, zone, dialect):
        conn.execute(stage.insert(), batch)
        count += len(batch)
    if count != entry.rows:
        raise LoadError(
            f"{archive.where}/{files.rows}: {count} rows, its manifest says {entry.rows}"
        )
    if count:
        conn.execute(_upsert(dialect, table, stage, columns, files.schema.primary_key))
    stage.drop(conn)
    return count


def _delete(
    conn: Connection,
    dialect: str,
    archive: ExportArchive,
    files: TableFiles,
    table: sa.Table,
    entry: TableEntry,
) -> int:
    key = list(files.schema.primary_key)
    stage = _stage(conn, table, key, "tidegate_deleted")
    count = 0
    for batch in _batches(archive, files.deleted, files.schema, key, UTC, dialect):
        conn.execute(stage.insert(), batch)
        count += len(batch)
    target_key = sa.tuple_(*[table.c[k] for k in key]) if len(key) > 1 else table.c[key[0]]
    conn.execute(table.delete().where(target_key.in_(sa.select(*[stage.c[k] for k in key]))))
    stage.drop(conn)
    if count != entry.deleted:
        raise LoadError(
            f"{archive.where}/{files.deleted}: {count} keys, its manifest says {entry.deleted}"
        )
    return count


def _stage(conn: Connection, table: sa.Table, columns: Sequence[str], name: str) -> sa.Table:
    """A temporary table with the target's column types (no key: rows may repeat)."""
    stage = sa.Table(
        name,
        sa.MetaData(),
        *[sa.Column(c, table.c[c].type) for c in columns],
        prefixes=["TEMPORARY"],
    )
    stage.drop(conn, checkfirst=True)
    stage.create(conn)
    return stage


def _upsert(
    dialect: str, table: sa.Table, stage: sa.Table, columns: Sequence[str], key: Sequence[str]
) -> sa.Executable:
    rows = sa.select(*[stage.c[c] for c in columns])
    others = [c for c in columns if c not in key]
    if dialect == "mysql":
        from sqlalchemy.dialects import mysql

        insert = mysql.insert(table).from_select(columns, rows)
        updates = {c: insert.inserted[c] for c in others} or {key[0]: insert.inserted[key[0]]}
        return insert.on_duplicate_key_update(updates)
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        # SQLite needs a WHERE to tell an upsert's SELECT from a join's ON.
        upsert: Any = sqlite.insert(table).from_select(columns, rows.where(sa.true()))
    else:  # PostgreSQL and DuckDB
        from sqlalchemy.dialects import postgresql

        upsert = postgresql.insert(table).from_select(columns, rows)
    if not others:
        merged: sa.Executable = upsert.on_conflict_do_nothing(index_elements=list(key))
    else:
        merged = upsert.on_conflict_do_update(
            index_elements=list(key), set_={c: upsert.excluded[c] for c in others}
        )
    return merged


def _batches(
    archive: ExportArchive,
    member: str,
    schema: TableSchema,
    columns: Sequence[str],
    zone: tzinfo,
    dialect: str,
) -> Iterator[list[dict[str, Any]]]:
    """The member's records as dicts of converted values, BATCH_ROWS at a time, after its
    header is checked against the columns the schema gives it."""
    where = f"{archive.where}/{member}"
    records = archive.records(member)
    header = next(records, None)
    if header != list(columns):
        raise LoadError(
            f"{where}: its header {header!r} is not the table's columns {list(columns)!r}",
            "the export was altered: export it again",
        )
    converts: list[Convert] = [converter(schema.column(c), zone, dialect) for c in columns]
    batch: list[dict[str, Any]] = []
    for line, record in enumerate(records, start=2):
        if len(record) != len(columns):
            raise LoadError(
                f"{where}: record {line - 1} has {len(record)} fields, not {len(columns)}"
            )
        try:
            batch.append(
                {c: convert(v) for c, convert, v in zip(columns, converts, record, strict=True)}
            )
        except (ValueError, TypeError) as error:
            raise LoadError(f"{where}: record {line - 1}: {error}") from None
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch
