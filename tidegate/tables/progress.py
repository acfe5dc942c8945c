"""Whether a table-export stream still has work from before a given time."""

from __future__ import annotations

from tidegate.capture import oldest_pending_us
from tidegate.db import Database
from tidegate.tables import stream


def backlog_before(db: Database, moment_us: int) -> bool:
    """True while a re-export is unfinished or changes older than ``moment_us`` are pending.

    `--until-caught-up` stops when this is False, so writers that never pause cannot keep
    it running for ever.
    """
    with db.engine.connect() as conn:
        last = stream.last_published(db, conn)
        planned = stream.planned(db, conn)
    if planned is not None:
        return True
    if (
        last is not None
        and last.restart == "reexport"
        and last.window_hi_us is not None
        and last.reexport_until_us is not None
        and last.window_hi_us < last.reexport_until_us
    ):
        return True
    oldest = oldest_pending_us(db)
    return oldest is not None and oldest < moment_us
