"""Claiming: stamp committed changes with the next audit key, the way PgQ ticks batches.

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
from collections.abc import Iterator
from decimal import Decimal

import sqlalchemy as sa

from tidegate import control
from tidegate.capture.registry import capture_for
from tidegate.db import Database
from tidegate.model import Change, ChangeOp, Claim, from_us, now_us

_STREAM_BATCH = 10_000


def claim(db: Database, *, until_us: int | None = None, force: bool = False) -> Claim | None:
    """Stamp every committed, unclaimed change with the next audit key.

    Args:
        db: the source database, with `init` done.
        until_us: claim only changes whose data time is before this (microseconds since
            1970 UTC), to bound how much data time one claim covers. The bound only
            batches: changes after it stay pending for the next claim.
        force: use up an audit key and record the claim even when nothing is pending
            (an export that must have an audit key of its own, such as a snapshot).

    Returns:
        The claim, or None when there was nothing to claim and ``force`` is off (no audit
        key is used up).
    """
    pending, change, counter = control.pending, control.change, control.counter
    with db.read_committed() as raw:
        conn = control.bind(db, raw)
        transaction = conn.begin()
        conn.execute(
            counter.update().where(counter.c.name == "audit_key").values(value=counter.c.value + 1)
        )
        audit_key = conn.execute(
            sa.select(counter.c.value).where(counter.c.name == "audit_key")
        ).scalar_one()
        visible = sa.select(
            pending.c.change_id,
            sa.literal(audit_key, sa.BigInteger),
            pending.c.table_id,
            pending.c.op,
            pending.c.pk,
            pending.c.captured_us,
            pending.c.data_us,
        )
        if until_us is not None:
            visible = visible.where(pending.c.data_us < until_us)
        conn.execute(
            change.insert().from_select(
                ["change_id", "audit_key", "table_id", "op", "pk", "captured_us", "data_us"],
                visible,
            )
        )
        copied = capture_for(db).delete_claimed(conn, audit_key)
        if not copied and not force:
            transaction.rollback()
            return None
        claimed_us = now_us()
        conn.execute(
            control.tick.insert().values(audit_key=audit_key, claimed_us=claimed_us, changes=copied)
        )
        transaction.commit()
    return Claim(audit_key=audit_key, changes=copied, claimed_at=from_us(claimed_us))


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


def oldest_pending_us(db: Database) -> int | None:
    """The earliest data time among committed, unclaimed changes; None when none is."""
    with db.engine.connect() as raw:
        return (
            control.bind(db, raw)
            .execute(sa.select(sa.func.min(control.pending.c.data_us)))
            .scalar()
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
