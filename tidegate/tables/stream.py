"""The export stream's state in the source: tidegate_export rows, read and written."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.capture import oldest_pending_us
from tidegate.db import Database
from tidegate.errors import ExportError
from tidegate.lock import HeldLock
from tidegate.model import now_us
from tidegate.storage import Location
from tidegate.tables import drift
from tidegate.tables.plan import ExportRecord

_export = control.export


def _record(row: Any) -> ExportRecord:
    m = row._mapping
    return ExportRecord(
        **{
            name: m[name] for name in ExportRecord.__dataclass_fields__ if name != "snapshot_tables"
        },
        snapshot_tables=tuple(json.loads(m["snapshot_tables"])),
    )


def last_published(db: Database, conn: Connection) -> ExportRecord | None:
    """The newest published export."""
    return _one(db, conn, "published", _export.c.export_no.desc())


def planned(db: Database, conn: Connection) -> ExportRecord | None:
    """An export a dead run planned and did not publish."""
    return _one(db, conn, "planned", _export.c.export_no)


def _one(db: Database, conn: Connection, status: str, order: Any) -> ExportRecord | None:
    """The first export with a status, in an order."""
    query = sa.select(_export).where(_export.c.status == status).order_by(order).limit(1)
    row = control.bind(db, conn).execute(query).first()
    return _record(row) if row else None


def published(db: Database) -> list[ExportRecord]:
    """Every published export, oldest first."""
    with db.engine.connect() as raw:
        rows = control.bind(db, raw).execute(
            sa.select(_export).where(_export.c.status == "published").order_by(_export.c.export_no)
        )
        return [_record(row) for row in rows]


def max_claimed_key(db: Database, conn: Connection) -> int:
    """The newest audit key handed out by a claim (0 before any)."""
    tick = control.tick
    value = control.bind(db, conn).execute(
        sa.select(sa.func.max(tick.c.audit_key)).where(tick.c.queue == "tables")
    )
    return int(value.scalar() or 0)


def claim_time_us(db: Database, conn: Connection, audit_key: int) -> int | None:
    """When the claim of an audit key was made."""
    tick = control.tick
    return (
        control.bind(db, conn)
        .execute(sa.select(tick.c.claimed_us).where(tick.c.audit_key == audit_key))
        .scalar()
    )


def unsnapshotted(db: Database, conn: Connection) -> tuple[str, ...]:
    """Captured tables no export has exported whole yet (added to the selection later)."""
    capture = control.capture
    names = (
        control.bind(db, conn)
        .execute(
            sa.select(capture.c.table_name)
            .where(capture.c.snapshot_export.is_(None))
            .order_by(capture.c.table_name)
        )
        .scalars()
    )
    return tuple(names)


def insert_planned(db: Database, lock: HeldLock, record: ExportRecord) -> None:
    """Record an export about to be written (so a dead run's successor redoes it), under
    the job's lock: a run that lost it must not add to the chain.

    Raises:
        LockLost: the `tables` lock is gone; nothing was recorded.
    """
    values = {name: getattr(record, name) for name in ExportRecord.__dataclass_fields__}
    values["snapshot_tables"] = json.dumps(list(record.snapshot_tables))
    with lock.transaction(f"planning {record.name}") as raw:
        control.bind(db, raw).execute(_export.insert().values(**values))


def mark_published(
    db: Database, lock: HeldLock, record: ExportRecord, rows: int, size: int
) -> None:
    """The export's folder is complete: publish it in the stream, in one transaction,
    under the job's lock.

    Raises:
        LockLost: the `tables` lock is gone; the export stays planned, and the next run
            finds its folder published and records it.
    """
    capture = control.capture
    with lock.transaction(f"recording {record.name} as published") as raw:
        conn = control.bind(db, raw)
        conn.execute(
            _export.update()
            .where(_export.c.export_no == record.export_no)
            .values(status="published", published_us=now_us(), row_count=rows, byte_count=size)
        )
        if record.snapshot_tables:
            conn.execute(
                capture.update()
                .where(capture.c.table_name.in_(record.snapshot_tables))
                .values(snapshot_export=record.export_no)
            )
        # Its manifest reported them (no drift is followed while an export is planned).
        drift.clear_announced(db, raw)


LOCATION_KEY = "output_location"


def follow_location(db: Database, location: Location, *, moved: bool = False) -> None:
    """Check that table exports go where the stream's published ones went (remembered in
    `tidegate_meta` by `remember_location`); `moved` records `location` as the stream's
    new place (its folders were moved there).

    Raises:
        ExportError: `location` is not the stream's, and `moved` is off (one line, with a
            hint): a mistyped `[output] location` would start a second chain in it.
    """
    here = _location_key(location)
    with db.engine.connect() as conn:
        found = control.meta_value(db, conn, LOCATION_KEY)
    if found is None or found == here:
        return
    if not moved:
        raise ExportError(
            f"{location.label}: {location.url} is not where this source's table exports "
            f"go ({found}): exporting there would start a second chain",
            "correct [output] location; or, if the export folders were moved there, "
            "run `tidegate export tables --location-moved` once",
        )
    with db.begin(write=True) as conn:
        control.set_meta(db, conn, LOCATION_KEY, here)


def remember_location(db: Database, location: Location) -> None:
    """After an export is published: its location is the stream's (if none was yet)."""
    with db.engine.connect() as conn:
        if control.meta_value(db, conn, LOCATION_KEY) is not None:
            return  # read first: no write lock taken on every run
    with db.begin(write=True) as conn:
        if control.meta_value(db, conn, LOCATION_KEY) is None:
            control.set_meta(db, conn, LOCATION_KEY, _location_key(location))


def _location_key(location: Location) -> str:
    """The location's identity as `tidegate_meta` holds it (255 characters at most)."""
    identity = location.identity
    if len(identity) <= 255:
        return identity
    return "sha1:" + hashlib.sha1(identity.encode("utf-8")).hexdigest()


def next_export_no(db: Database, conn: Connection) -> int:
    """The sequence number of the next export."""
    value = control.bind(db, conn).execute(sa.select(sa.func.max(_export.c.export_no)))
    return int(value.scalar() or 0) + 1


def installed_us(db: Database, conn: Connection) -> int:
    """When capture was first installed: the time the chain starts from."""
    value = control.bind(db, conn).execute(sa.select(sa.func.min(control.capture.c.installed_us)))
    return int(value.scalar() or now_us())


def backlog_before(db: Database, moment_us: int) -> bool:
    """True while an export is left to redo, a re-export is unfinished, or changes with data
    time before ``moment_us`` are pending.

    `--until-caught-up` stops when this is False, so writers that never pause cannot keep
    it running for ever.
    """
    with db.engine.connect() as conn:
        last = last_published(db, conn)
        unfinished = planned(db, conn)
        oldest = oldest_pending_us(db, conn)
    if unfinished is not None or (last is not None and last.reexport_unfinished):
        return True
    return oldest is not None and oldest < moment_us
