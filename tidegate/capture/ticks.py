"""Claiming: stamp committed queue entries with the next audit key, the way PgQ ticks batches.

Two queues are claimed this way: row changes for table export, root keys for entity export.

A claim is one transaction at READ COMMITTED:

1. take the next audit key K from ``tidegate_counter`` (its row lock orders claims);
2. copy every row of ``tidegate_pending`` that the statement can see into
   ``tidegate_change`` with audit key K. READ COMMITTED means it sees exactly the changes
   whose transactions had committed when it started: a change of a transaction still open
   is invisible, neither copied nor waited for, and stays pending for a later claim;
3. delete from ``tidegate_pending`` exactly the rows copied in step 2, by change id;
4. record the claim in ``tidegate_tick``.

Nothing here orders by an id or a timestamp to decide what was claimed: a change is claimed
because it was committed and unclaimed, so a transaction that started early and committed
late is claimed by the next claim, never skipped. A claim that dies rolls back whole, so its
changes stay pending; one that commits moved them, so no later claim sees them again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.capture.registry import capture_for
from tidegate.db import Database
from tidegate.model import Change, ChangeOp, Claim, from_us, now_us

log = logging.getLogger(__name__)

_STREAM_BATCH = 10_000


@dataclass(frozen=True)
class Queue:
    """A pair of pending and claimed tables that claims move rows between.

    Attributes:
        name: recorded in tidegate_tick with each claim ("tables" or "entities").
        pending: where capture appends.
        claimed: where a claim moves rows, stamped with its audit key.
        id_column: the pending table's autoincrement id, kept as the claimed row's key.
        columns: the other columns moved.
        data_column: the column `until_us` bounds, if any.
    """

    name: str
    pending: sa.Table
    claimed: sa.Table
    id_column: str
    columns: tuple[str, ...]
    data_column: str | None = None


TABLE_CHANGES = Queue(
    "tables",
    control.pending,
    control.change,
    "change_id",
    ("table_id", "op", "pk", "captured_us", "data_us"),
    "data_us",
)
"""Row changes of the captured tables, for table export."""

ENTITY_KEYS = Queue(
    "entities",
    control.entity_pending,
    control.entity_queue,
    "queue_id",
    ("entity_id", "pk", "captured_us"),
)
"""Root keys of changed entities, for ongoing entity export."""


def claim(
    db: Database, *, queue: Queue = TABLE_CHANGES, until_us: int | None = None, force: bool = False
) -> Claim | None:
    """Stamp every committed, unclaimed entry of a queue with the next audit key.

    Args:
        db: the source database, with `init` done.
        queue: which queue to claim from (table changes by default).
        until_us: claim only entries whose data time is before this (microseconds since
            1970 UTC), to bound how much data time one claim covers. The bound only
            batches: later entries stay pending for the next claim.
        force: use up an audit key and record the claim even when nothing is pending
            (an export that must have an audit key of its own, such as a snapshot).

    Returns:
        The claim, or None when there was nothing to claim and ``force`` is off (no audit
        key is used up).
    """
    counter = control.counter
    pending = queue.pending
    if queue.data_column is not None:
        _report_future_data(db, pending, queue)  # before: no longer in the claim's transaction
    with db.read_committed() as raw:
        conn = control.bind(db, raw)
        transaction = conn.begin()
        conn.execute(
            counter.update().where(counter.c.name == "audit_key").values(value=counter.c.value + 1)
        )
        audit_key = conn.execute(
            sa.select(counter.c.value).where(counter.c.name == "audit_key")
        ).scalar_one()
        data = _data_time(pending, queue)
        visible = sa.select(
            pending.c[queue.id_column],
            sa.literal(audit_key, sa.BigInteger),
            *[data if name == queue.data_column else pending.c[name] for name in queue.columns],
        )
        if until_us is not None and data is not None:
            visible = visible.where(data < until_us)
        conn.execute(
            queue.claimed.insert().from_select(
                [queue.id_column, "audit_key", *queue.columns], visible
            )
        )
        copied = capture_for(db).delete_claimed(conn, audit_key, queue)
        if not copied and not force:
            transaction.rollback()
            return None
        claimed_us = now_us()
        conn.execute(
            control.tick.insert().values(
                audit_key=audit_key, queue=queue.name, claimed_us=claimed_us, changes=copied
            )
        )
        transaction.commit()
    return Claim(audit_key=audit_key, changes=copied, claimed_at=from_us(claimed_us))


def _data_time(pending: sa.Table, queue: Queue) -> sa.ColumnElement[int] | None:
    """A change's data time, no later than its capture: a time column in the future (a
    year 2999 typed by hand) would otherwise stay pending until then, or name every later
    folder after it."""
    if queue.data_column is None:
        return None
    data, captured = pending.c[queue.data_column], pending.c.captured_us
    return sa.case((data > captured, captured), else_=data).label(queue.data_column)


def _report_future_data(db: Database, pending: sa.Table, queue: Queue) -> None:
    """Log how many pending changes have a data time after their capture (read before the
    claim, outside its transaction: a warning, which a change committed meanwhile may miss
    until the next claim)."""
    assert queue.data_column is not None
    later = pending.c[queue.data_column] > pending.c.captured_us
    with db.engine.connect() as raw:
        count = control.bind(db, raw).execute(sa.select(sa.func.count()).where(later)).scalar()
    if count:
        log.warning(
            "%d change(s) have a data time after their capture (a [tables] time_columns "
            "value in the future): taken as their capture time",
            count,
            extra={"changes": count},
        )


def read_claim(db: Database, audit_key: int) -> Iterator[Change]:
    """Stream the changes claimed under one audit key, in capture order.

    Rows are fetched in batches, so a claim of millions of changes keeps memory flat.
    """
    change, capture = control.change, control.capture
    query = (
        sa.select(change, capture.c.table_name)
        .join(capture, capture.c.table_id == change.c.table_id)
        .where(change.c.audit_key == audit_key)
        .order_by(change.c.change_id)
    )
    with db.engine.connect() as raw:
        conn = control.bind(db, raw).execution_options(yield_per=_STREAM_BATCH)
        for row in conn.execute(query):
            op: ChangeOp = row.op
            yield Change(
                change_id=row.change_id,
                audit_key=row.audit_key,
                table=row.table_name,
                op=op,
                # Decimal keeps every digit of an exact numeric key.
                key=tuple(json.loads(row.pk, parse_float=Decimal)),
                captured_at=from_us(row.captured_us),
                data_at=from_us(row.data_us),
            )


def oldest_pending_us(db: Database, conn: Connection) -> int | None:
    """The earliest data time among committed, unclaimed changes; None when none is.

    Read on the caller's connection: on SQLite a second connection opened while the first
    holds a transaction can wait for itself, through another process's commit, until the
    busy timeout.
    """
    return (
        control.bind(db, conn).execute(sa.select(sa.func.min(control.pending.c.data_us))).scalar()
    )


def pending_by_table(db: Database) -> dict[str, int]:
    """Committed changes not yet claimed, per captured table (tables with none included)."""
    pending, capture = control.pending, control.capture
    query = (
        sa.select(capture.c.table_name, sa.func.count(pending.c.change_id))
        .select_from(capture.outerjoin(pending, pending.c.table_id == capture.c.table_id))
        .group_by(capture.c.table_name)
        .order_by(capture.c.table_name)
    )
    with db.engine.connect() as raw:
        return {name: count for name, count in control.bind(db, raw).execute(query)}
