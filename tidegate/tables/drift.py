"""Schema drift: captured tables whose definition changed since the stream last saw them.

Every export run first compares each captured table's shape (its columns with their
exported types and NULL-ness, and its primary key; capture/shapes.py) with the one
recorded at the run before, in `tidegate_shape`. A table whose shape changed:

- gets its capture installed again when a column capture names (its key, its time
  column) is gone: on PostgreSQL the capture kept working meanwhile (by column position),
  on MariaDB a renamed captured column failed the application's writes until now
  (docs/schema-changes.md). Other changes need no DDL, so no wait for open writers;
- is *migrated* when its rows still merge row by row (columns added empty, integer or
  text types widened, NOT NULL dropped: `shapes.migratable`): its changes are exported
  as before, in the new shape that `tidegate.schema.json` gives, and the loader widens
  the target's table or adds the columns;
- else is exported whole by the coming export (as a table added to the selection is):
  its file holds every row and `tidegate.schema.json` its new shape, and the loader
  replaces the target's table.

A captured table that no longer exists (dropped, or renamed: the new name is a new table
for the next `init`) ends its stream: its capture and unexported changes are removed, and
the target keeps its last rows.

The next published export reports each of these in its manifest
(`<tidegate-shape-change>`), so that a consumer other than tidegate can follow: the row's
`announce` column holds the outcome until then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.capture import captured_tables
from tidegate.capture import shapes as shapes_of
from tidegate.capture.install import time_column
from tidegate.capture.registry import capture_for, register, unregister
from tidegate.db import Database, list_tables
from tidegate.formats.manifest import ShapeChange, ShapeOutcome
from tidegate.model import CapturedTable
from tidegate.tables.schema import TableSpec

_shape = control.shape


@dataclass(frozen=True)
class _Recorded:
    fingerprint: str
    detail: str
    announce: ShapeOutcome | None


@dataclass(frozen=True)
class Drift:
    """What a run found: tables migrated, exported whole, and gone."""

    migrated: tuple[str, ...] = ()
    whole: tuple[str, ...] = ()
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
        CaptureError: a changed table lost its time column (one line, with a hint).
    """
    with db.engine.connect() as conn:
        _shape.create(control.bind(db, conn), checkfirst=True)  # an install made by 0.1
        conn.commit()
        captured = captured_tables(db, conn)
        recorded = _recorded(db, conn)
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
        if table.table_id in shapes and _changed(table, shapes[table.table_id], recorded)
    ]
    if not ended and not changed and all(i in recorded for i in shapes):
        return Drift()
    capture = capture_for(db)
    migrated, whole = [], []
    # READ COMMITTED: no gap locks on tidegate_shape, which the other export kind's run
    # may be reading at the same moment (on MariaDB they deadlocked).
    with db.read_committed() as conn, conn.begin():
        conn = control.bind(db, conn)
        for table in ended:
            capture.remove(conn, table)
            unregister(db, conn, table)
            _announce_ended(conn, table.table_id, table.name, table.table_id in recorded)
        for table in changed:
            # A table whose key was dropped is keyless from now on: captured without a
            # key and exported whole after each change (docs/schema-changes.md).
            shape = shapes[table.table_id]
            time_name = time_columns.get(table.name)
            before = recorded.get(table.table_id)
            if _capture_stale(table, shape, before, time_name):
                # Capture names those columns: installed again for their new names and
                # types (DDL, which waits for the table's open writers: only when it must).
                time = time_column(db, table.name, time_name, timezone)
                recaptured = replace(table, key_columns=shape.key, time=time)
                capture.install(conn, recaptured)
                register(db, conn, recaptured, new=False)
            if (
                before is not None
                and before.announce != "whole"  # the export writing it whole is still to come
                and shape.key == table.key_columns
                and shapes_of.migratable(before.detail, shape)
                and not shapes_of.repartitioned(before.detail, shape)
            ):
                migrated.append(table.name)
            else:
                whole.append(table.name)
                _export_whole(conn, table.table_id)
        outcomes: dict[str, ShapeOutcome] = {name: "migrated" for name in migrated}
        outcomes.update({name: "whole" for name in whole})
        for table in captured.values():
            if table.table_id in shapes:
                shape, outcome = shapes[table.table_id], outcomes.get(table.name)
                _record(conn, table.table_id, table.name, shape, outcome, recorded)
    return Drift(tuple(migrated), tuple(whole), tuple(t.name for t in ended))


def _changed(
    table: CapturedTable, shape: shapes_of.Shape, recorded: Mapping[int, _Recorded]
) -> bool:
    before = recorded.get(table.table_id)
    # The key capture reads may not be the table's even with no shape recorded (a stream
    # that began before shapes were recorded).
    return (before is not None and before.fingerprint != shape.fingerprint) or (
        shape.key != table.key_columns
    )


def unmergeable(db: Database, conn: Connection, specs: Sequence[TableSpec]) -> frozenset[str]:
    """Tables whose definition, read as an export writes them, cannot be merged row by row
    into the shape recorded when this run began: changed by DDL during the run. The
    export writes them whole, so that a loader never meets an export whose rows it cannot
    merge (a new key: it would stop there for ever); the next run reports the change."""
    recorded = _recorded(db, conn)
    found = set()
    for spec in specs:
        before = recorded.get(spec.table_id)
        columns = [(c.name, c.type, c.sql_type, c.nullable) for c in spec.columns]
        now = shapes_of.shape_of(columns, spec.primary_key)
        if before is None or before.fingerprint == now.fingerprint:
            continue
        if not shapes_of.migratable(before.detail, now):
            found.add(spec.name)
    return frozenset(found)


def _capture_stale(
    table: CapturedTable, shape: shapes_of.Shape, before: _Recorded | None, time_name: str | None
) -> bool:
    """Whether a column capture names (the key, the time column) is gone or retyped: on
    PostgreSQL a session that ran the capture function before a type change reads the key
    by position until the function is installed again."""
    named = [*table.key_columns, *([time_name] if time_name else [])]
    if shape.key != table.key_columns or any(name not in shape.columns for name in named):
        return True
    return before is not None and shapes_of.sql_types(
        before.detail, named
    ) != shapes_of.column_types(shape, named)


def announced(db: Database, conn: Connection) -> tuple[ShapeChange, ...]:
    """The shape changes the next published export reports, by table name."""
    rows = control.bind(db, conn).execute(
        sa.select(_shape.c.table_name, _shape.c.announce)
        .where(_shape.c.announce.is_not(None))
        .order_by(_shape.c.table_name)
    )
    return tuple(ShapeChange(name, outcome) for name, outcome in rows)


def clear_announced(db: Database, conn: Connection) -> None:
    """An export reporting the changes is published (in the same transaction): they are
    reported, and ended tables are forgotten."""
    conn = control.bind(db, conn)
    conn.execute(_shape.delete().where(_shape.c.announce == "ended"))
    conn.execute(_shape.update().where(_shape.c.announce.is_not(None)).values(announce=None))


def _recorded(db: Database, conn: Connection) -> dict[int, _Recorded]:
    """Each table's recorded shape, by table id (ended ones left out)."""
    columns = _shape.c
    rows = control.bind(db, conn).execute(
        sa.select(columns.table_id, columns.fingerprint, columns.detail, columns.announce).where(
            sa.or_(columns.announce.is_(None), columns.announce != "ended")
        )
    )
    return {row[0]: _Recorded(row[1], row[2], row[3]) for row in rows}


def _record(
    conn: Connection,
    table_id: int,
    name: str,
    shape: shapes_of.Shape,
    outcome: ShapeOutcome | None,
    recorded: Mapping[int, _Recorded],
) -> None:
    values = {"table_name": name, "fingerprint": shape.fingerprint, "detail": shape.detail}
    if outcome is not None:
        values["announce"] = outcome
    if table_id in recorded:
        conn.execute(_shape.update().where(_shape.c.table_id == table_id).values(values))
    else:
        conn.execute(_shape.insert().values(table_id=table_id, **values))


def _announce_ended(conn: Connection, table_id: int, name: str, recorded: bool) -> None:
    if recorded:
        where = _shape.c.table_id == table_id
        conn.execute(_shape.update().where(where).values(announce="ended"))
    else:
        values = {"table_name": name, "fingerprint": "", "detail": "", "announce": "ended"}
        conn.execute(_shape.insert().values(table_id=table_id, **values))


def _export_whole(conn: Connection, table_id: int) -> None:
    capture = control.capture
    where = capture.c.table_id == table_id
    conn.execute(capture.update().where(where).values(snapshot_export=None))
