"""Bounded growth of tidegate's tables in the source: what `[capture] keep` removes, and
how big each table is.

Export runs call :func:`purge` after their work. It removes, each in batches of at most
`BATCH` rows, every one its own short transaction at READ COMMITTED (so that no writer and
no claim ever waits long behind it):

- claimed changes (``tidegate_change``) already in a published export (audit key at most
  the last published ``hwm-to``) whose data time is older than the kept window, and the
  claims (``tidegate_tick``) that stamped them; a re-export still under way keeps what its
  next windows need;
- table-export records (``tidegate_export``) published before the window, but never the
  last one, from which the chain goes on;
- run records (``tidegate_run``) that ended before the window, but never a job's last one,
  from which its run numbers go on (entity file names carry them).

The window's start is recorded (``tidegate_meta``), so that ``--reexport-since`` an earlier
date is refused naming the oldest date it can reach (:func:`kept_since`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.db import Database
from tidegate.model import from_us, now_us

BATCH = 2_000
"""Rows one purge transaction removes at most: a few milliseconds of work, so that a
SQLite writer (which waits for the whole database) is not held up noticeably."""
KEPT_SINCE = "changes_kept_since_us"
"""The tidegate_meta row holding the start of the kept window of the last purge."""


@dataclass(frozen=True)
class Purged:
    """Rows one purge removed, by table."""

    changes: int = 0
    ticks: int = 0
    exports: int = 0
    runs: int = 0

    @property
    def total(self) -> int:
        return self.changes + self.ticks + self.exports + self.runs


@dataclass(frozen=True)
class TableSize:
    """One of tidegate's tables in the source: its rows and the bytes it takes."""

    table: str
    rows: int
    bytes: int | None  # None where the database cannot tell


def purge(db: Database, keep: timedelta, *, queue: Literal["tables", "entities"]) -> Purged:
    """Remove what is older than the kept window (see the module docstring).

    Args:
        db: the source.
        keep: the kept window, `[capture] keep`.
        queue: the job's queue: "tables" also removes exported changes, their claims and
            table-export records; "entities" the claims of the entity queue that every
            ongoing export has taken. Each job removes only what it alone writes.
    """
    cutoff = now_us() - keep // timedelta(microseconds=1)
    runs = _purge_runs(db, cutoff)
    if queue == "entities":
        return Purged(ticks=_purge_entity_ticks(db, cutoff), runs=runs)
    with db.engine.connect() as raw:
        last = _last_published(control.bind(db, raw))
    if last is None:
        return Purged(runs=runs)
    window, until = last["window_hi_us"], last["reexport_until_us"]
    if window is not None and until is not None and window < until:
        cutoff = min(cutoff, window)  # a re-export under way reads on from its next window
    change, tick, export = control.change, control.tick, control.export
    changes = _in_batches(
        db,
        change.c.change_id,
        sa.and_(change.c.audit_key <= last["hwm_to"], change.c.data_us < cutoff),
        change.c.audit_key,
    )
    if changes:
        _record_kept_since(db, cutoff)
        _reclaim(db, change, control.pending)
    ticks = _in_batches(
        db,
        tick.c.audit_key,
        sa.and_(
            tick.c.queue == "tables",
            tick.c.audit_key < last["hwm_to"],
            tick.c.claimed_us < cutoff,
        ),
        tick.c.audit_key,
    )
    exports = _in_batches(
        db,
        export.c.export_no,
        sa.and_(
            export.c.status == "published",
            export.c.export_no < last["export_no"],
            export.c.published_us < cutoff,
        ),
        export.c.export_no,
    )
    return Purged(changes=changes, ticks=ticks, exports=exports, runs=runs)


def _purge_entity_ticks(db: Database, cutoff: int) -> int:
    """Claims of the entity queue older than the window that no queued entry still
    carries; the newest claim stays."""
    tick, queued = control.tick, control.entity_queue
    newest = (
        sa.select(sa.func.max(tick.c.audit_key)).where(tick.c.queue == "entities").scalar_subquery()
    )
    still_queued = sa.exists().where(queued.c.audit_key == tick.c.audit_key)
    return _in_batches(
        db,
        tick.c.audit_key,
        sa.and_(
            tick.c.queue == "entities",
            tick.c.claimed_us < cutoff,
            tick.c.audit_key < newest,
            ~still_queued,
        ),
        tick.c.audit_key,
    )


def kept_since(db: Database, conn: Connection) -> datetime | None:
    """The oldest data time whose changes are all still kept, or None when nothing has
    been removed yet (every change since `init` is there)."""
    value = control.meta_value(db, conn, KEPT_SINCE)
    return from_us(int(value)) if value is not None else None


def table_sizes(db: Database) -> list[TableSize]:
    """Rows and bytes of each of tidegate's tables in the source, in name order."""
    names = sorted(control.TABLE_NAMES)
    statement = sa.text(db.dialect.sql("table_bytes")).bindparams(
        sa.bindparam("names", expanding=True)
    )
    with db.engine.connect() as raw:
        conn = control.bind(db, raw)
        present = set(sa.inspect(raw).get_table_names(schema=db.schema or None))
        rows = {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in control.metadata.sorted_tables
            if table.name in present
        }
        sizes = {
            name: int(size)
            for name, size in raw.execute(statement, {"names": names, "schema": db.schema})
            if size is not None
        }
    return [TableSize(name, rows[name], sizes.get(name)) for name in names if name in rows]


def _last_published(conn: Connection) -> sa.RowMapping | None:
    export = control.export
    row = conn.execute(
        sa.select(
            export.c.export_no,
            export.c.hwm_to,
            export.c.window_hi_us,
            export.c.reexport_until_us,
        )
        .where(export.c.status == "published")
        .order_by(export.c.export_no.desc())
        .limit(1)
    ).first()
    return row._mapping if row is not None else None


def _purge_runs(db: Database, cutoff: int) -> int:
    run = control.run
    with db.engine.connect() as raw:
        query = sa.select(run.c.job, sa.func.max(run.c.run_number)).group_by(run.c.job)
        latest = {job: last for job, last in control.bind(db, raw).execute(query)}
    return sum(
        _in_batches(
            db,
            run.c.run_number,
            sa.and_(
                run.c.job == job,
                run.c.run_number < last,
                run.c.ended_us.is_not(None),
                run.c.ended_us < cutoff,
            ),
            run.c.run_number,
        )
        for job, last in latest.items()
    )


def _in_batches(
    db: Database, key: sa.Column[Any], where: sa.ColumnElement[bool], order: sa.Column[Any]
) -> int:
    """Delete the rows matching ``where``, `BATCH` keys at a time, each batch its own
    transaction; returns how many were deleted."""
    table = key.table
    deleted = 0
    while True:
        with db.read_committed() as raw, raw.begin():
            conn = control.bind(db, raw)
            keys = list(
                conn.execute(sa.select(key).where(where).order_by(order).limit(BATCH)).scalars()
            )
            if keys:
                conn.execute(sa.delete(table).where(where, key.in_(keys)))
        deleted += len(keys)
        if len(keys) < BATCH:
            return deleted


def _reclaim(db: Database, *tables: sa.Table) -> None:
    """Make the removed rows' space reusable now, where the database needs telling
    (PostgreSQL's VACUUM; InnoDB and SQLite reuse freed pages by themselves)."""
    if not db.dialect.has_sql("reclaim"):
        return
    names = ", ".join(db.qualified(table.name) for table in tables)
    statement = db.dialect.sql("reclaim").format(tables=names)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(statement)


def _record_kept_since(db: Database, cutoff: int) -> None:
    """Move the start of the kept window forward to ``cutoff`` (never back)."""
    with db.begin(write=True) as conn:
        current = control.meta_value(db, conn, KEPT_SINCE)
        if current is None or int(current) < cutoff:
            control.set_meta(db, conn, KEPT_SINCE, str(cutoff))
