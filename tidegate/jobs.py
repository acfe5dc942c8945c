"""A job run: take the job's lock, record the run, and record how it ended."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from tidegate import runs
from tidegate.db import Database
from tidegate.errors import SourceUnavailable
from tidegate.lock import job_lock
from tidegate.model import JobName
from tidegate.runs import RunCounters


@contextmanager
def recorded_run(db: Database, job: JobName, *, wait_seconds: float = 0) -> Iterator[RunCounters]:
    """Run a block as one run of ``job``: locked, recorded, and finished either way.

    The block fills in the yielded counters. An exception marks the run `failed` with its
    message and propagates; a process that dies leaves it `running` for the next run of the
    job to mark `abandoned`.

    Raises:
        JobBusy: another process runs the same job.
        NotInitialized: `tidegate init` has not been run.
    """
    with job_lock(db, job, wait_seconds=wait_seconds):
        try:
            record = runs.start(db, job)
        except sa.exc.OperationalError as error:
            raise _unavailable(error) from error
        counters = RunCounters(run_number=record.run_number)
        try:
            yield counters
        except BaseException as error:
            runs.finish(db, record, "failed", counters, str(error) or type(error).__name__)
            if _connection_lost(error):
                raise _unavailable(error) from error
            raise
        runs.finish(db, record, "succeeded", counters)


def _unavailable(error: BaseException) -> SourceUnavailable:
    reason = _first_line(error)
    if "database is locked" in reason:  # SQLite's busy timeout ran out
        return SourceUnavailable(
            "the source database stayed locked by another writer for the whole busy timeout",
            "a transaction of the application holds SQLite's write lock: run it again once "
            "that transaction has ended",
        )
    return SourceUnavailable(
        f"the connection to the source was lost: {reason}",
        "run it again: the run is redone from where it stopped",
    )


def _connection_lost(error: BaseException) -> bool:
    """An operational error of SQLAlchemy or of a driver used directly (COPY): the server
    went away or ended the session."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError) or any(
        kind.__name__ in ("OperationalError", "InterfaceError") for kind in type(error).__mro__
    )


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(error).__name__
