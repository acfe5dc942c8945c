"""Applying one table-export folder to the target, inside the caller's transaction.

Per table, the text of the CSV turned into the columns' types by the target in SQL, not in
Python, each target its fastest way (`TargetDialect.load_rows`): by default the records
staged as text in a temporary table, then merged by primary key with one `INSERT … SELECT
… ON CONFLICT DO UPDATE`; PostgreSQL stages by `COPY` and copies a table exported whole
straight into it; SQLite inserts batches of records with their conversions in SQL.

Deleted keys are staged the same way and deleted in one statement. Any error (a CSV that
does not match its header, a value its column cannot hold, a member whose sha1 fails, a
record count other than the manifest's) raises before the transaction commits.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.errors import LoadError
from tidegate.formats.manifest import Manifest
from tidegate.load.archive import ExportArchive
from tidegate.load.staging import key_columns
from tidegate.load.targets import TargetDialect


def apply_folder(
    conn: Connection,
    dialect: TargetDialect,
    archive: ExportArchive,
    manifest: Manifest,
    tables: dict[str, sa.Table],
) -> int:
    """Merge every table of the export; the number of rows written and deleted."""
    changed = 0
    for files, entry in zip(archive.tables, manifest.tables, strict=True):
        table = tables[files.schema.name]
        if not files.schema.primary_key and not entry.whole:
            raise LoadError(
                f"{archive.where}: table {files.schema.name!r} has no key, and the export "
                "does not hold all of it: its rows cannot be merged",
                "export it again: tidegate exports a table without a key whole",
            )
        if entry.whole:
            conn.execute(table.delete())
        dialect.load_rows(conn, table, archive, files.rows, files.schema, entry)
        changed += entry.rows
        if entry.deleted:
            key = list(files.schema.primary_key)
            stage = dialect.stage(conn, archive, files.deleted, files.schema, key, entry.deleted)
            typed: list[Any] = [dialect.typed(stage, table, files.schema, k) for k in key]
            conn.execute(
                table.delete().where(key_columns(table, files.schema).in_(sa.select(*typed)))
            )
            stage.drop(conn)
            changed += entry.deleted
    return changed
