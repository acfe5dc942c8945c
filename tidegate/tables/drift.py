"""Schema drift: captured tables whose definition changed since the stream last saw them.

Every export run first compares each captured table's shape (its columns with their
exported types and NULL-ness, and its primary key) with a fingerprint recorded at the run
before, in `tidegate_meta` (`shape:<table id>`). A table whose shape changed:

- gets its capture installed again when a column capture names (its key, its time
  column) is gone: on PostgreSQL the capture kept working meanwhile (by column position),
  on MariaDB a renamed captured column failed the application's writes until now
  (docs/schema-changes.md). Other changes need no DDL, so no wait for open writers;
- is exported whole by the coming export (as a table added to the selection is): its file
  holds every row and `tidegate.schema.json` its new shape, and the loader replaces the
  target's table when the target's columns or key differ.

A captured table that no longer exists (dropped, or renamed: the new name is a new table
for the next `init`) ends its stream: its capture and unexported changes are removed, and
the target keeps its last rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.capture import captured_tables
from tidegate.capture import shapes as shapes_of
from tidegate.capture.install import time_column
from tidegate.capture.registry import capture_for, register, unregister
from tidegate.db import Database, list_tables
from tidegate.errors import CaptureError

PREFIX = "shape:"


@dataclass(frozen=True)
class Drift:
    """What a run found: tables whose shape changed, and tables that are gone."""

    changed: tuple[str, ...] = ()
    ended: tuple[str, ...] = ()


def follow(
    db: Database,
    time_columns: Mapping[str, str],
    keys: Mapping[str, tuple[str, ...]],
    timezone: str,
) -> Drift:
    """Compare every captured table with its recorded shape and act on what changed (see
    the module's description); record the shapes seen now. `time_columns`, `keys` and
    `timezone` are `[tables] time_columns` and `keys` and `[source] timezone`, for the
    capture installed again.

    Raises:
        CaptureError: a changed table has no primary key left, or lost its time column
            (one line, with a hint).
    """
    with db.engine.connect() as conn:
        captured = captured_tables(db, conn)
        recorded = shapes_of.recorded(db, conn, PREFIX)
    present = set(list_tables(db))
    ended = [table for name, table in captured.items() if name not in present]
    shapes = {
        t.table_id: shapes_of.shape(db, t.name, keys.get(t.name, ()))
        for t in captured.values()
        if t.name in present
    }
    changed = [
        table
        for table in captured.values()
        if table.table_id in shapes
        and (
            recorded.get(table.table_id) not in (None, shapes[table.table_id].fingerprint)
            # The key capture reads is not the table's (a stream that began before shapes
            # were recorded).
            or shapes[table.table_id].key != table.key_columns
        )
    ]
    if not ended and not changed and all(recorded.get(i) for i in shapes):
        return Drift()
    capture = capture_for(db)
    # READ COMMITTED: no gap locks on tidegate_meta, which the other export kind's run
    # may be writing at the same moment (on MariaDB they deadlocked).
    with db.read_committed() as conn, conn.begin():
        for table in ended:
            capture.remove(conn, table)
            unregister(db, conn, table)
            shapes_of.forget(db, conn, PREFIX, table.table_id)
        for table in changed:
            shape = shapes[table.table_id]
            if table.key_columns and not shape.key:
                raise CaptureError(
                    f"{db.origin}: table {table.name!r} has no primary key any more",
                    "give it a primary key again, or name its key columns in [tables] keys",
                )
            time_name = time_columns.get(table.name)
            if shape.key != table.key_columns or (time_name and time_name not in shape.columns):
                # Capture names those columns: installed again for their new names (DDL,
                # which waits for the table's open writers: only when it must).
                time = time_column(db, table.name, time_name, timezone)
                recaptured = replace(table, key_columns=shape.key, time=time)
                capture.install(conn, recaptured)
                register(db, conn, recaptured, new=False)
            _export_whole(db, conn, table.table_id)
        for table_id, shape in shapes.items():
            shapes_of.record(db, conn, PREFIX, table_id, shape.fingerprint)
    return Drift(tuple(t.name for t in changed), tuple(t.name for t in ended))


def _export_whole(db: Database, conn: Connection, table_id: int) -> None:
    capture = control.capture
    control.bind(db, conn).execute(
        capture.update().where(capture.c.table_id == table_id).values(snapshot_export=None)
    )
