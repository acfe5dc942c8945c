"""The table-export chain at a glance: where it stands, what is pending, how far behind.

Read-only; what the dashboard and `tidegate status --json` show of table export.

*Lag* is how far the exports are behind the source's data: the age of the oldest committed
change no export has taken yet (0 when none is pending). Each published folder also has a
*lag at publication*: how old the newest data in it was when it was published; while a
backlog is worked through in `max_span` windows that is large, and once caught up it is
about the time between runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from tidegate import control
from tidegate.capture import oldest_pending_us
from tidegate.db import Database
from tidegate.model import from_us, now_us

RECENT = 100  # folders kept for the chart


@dataclass(frozen=True)
class ExportPoint:
    """One published export folder."""

    name: str
    audit_key: int
    kind: str
    published_at: datetime
    rows: int
    bytes: int
    lag_seconds: float  # at publication: published time minus the newest data time


@dataclass(frozen=True)
class ChainStatus:
    """The stream of table-export folders, as the source records it."""

    exports: int  # published folders
    last: ExportPoint | None
    last_data_at: datetime | None  # newest data time the published folders cover
    planned: str | None  # a folder a stopped run planned and the next run writes
    pending_changes: int  # committed changes no export has claimed
    oldest_pending_at: datetime | None
    lag_seconds: float
    recent: tuple[ExportPoint, ...]  # oldest first, at most RECENT


def chain_status(db: Database) -> ChainStatus:
    """Where the table-export chain stands now."""
    export = control.export
    with db.engine.connect() as raw:
        conn = control.bind(db, raw)
        published = export.c.status == "published"
        count = conn.execute(
            sa.select(sa.func.count()).select_from(export).where(published)
        ).scalar()
        rows = conn.execute(
            sa.select(export).where(published).order_by(export.c.export_no.desc()).limit(RECENT)
        ).all()
        planned = conn.execute(
            sa.select(export.c.name).where(export.c.status == "planned").limit(1)
        ).scalar()
        pending = conn.execute(sa.select(sa.func.count()).select_from(control.pending)).scalar()
        oldest = oldest_pending_us(db, raw)
    points = tuple(_point(row._mapping) for row in reversed(rows))
    now = now_us()
    return ChainStatus(
        exports=int(count or 0),
        last=points[-1] if points else None,
        last_data_at=from_us(max(r._mapping["max_data_us"] for r in rows)) if rows else None,
        planned=planned,
        pending_changes=int(pending or 0),
        oldest_pending_at=from_us(oldest) if oldest is not None else None,
        lag_seconds=max(0.0, (now - oldest) / 1e6) if oldest is not None else 0.0,
        recent=points,
    )


def _point(m: sa.RowMapping) -> ExportPoint:
    published = m["published_us"] or m["created_us"]
    return ExportPoint(
        name=m["name"],
        audit_key=int(m["hwm_to"]),
        kind=m["kind"],
        published_at=from_us(published),
        rows=int(m["row_count"]),
        bytes=int(m["byte_count"]),
        lag_seconds=max(0.0, (published - m["max_data_us"]) / 1e6),
    )
