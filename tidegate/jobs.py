"""A job run: take the job's lock, record the run, and record how it ended."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa

from tidegate import runs
from tidegate.db import Database, connection_lost
from tidegate.errors import SourceUnavailable
from tidegate.lock import HeldLock, job_lock
from tidegate.model import JobName, RunRecord, RunStatus
from tidegate.runs import RunCounters


@dataclass
class Run(RunCounters):
    """A run in progress: the counters its job fills in, and the job lock it runs under,
    through which the job takes its steps that must not happen twice."""

    lock: HeldLock = field(kw_only=True)


@contextmanager
def recorded_run(db: Database, job: JobName, *, wait_seconds: float = 0) -> Iterator[Run]:
    """Run a block as one run of ``job``: locked, recorded, and finished either way.

    The block fills in the yielded counters. An exception marks the run `failed` with its
    message and propagates; a process that dies leaves it `running` for the next run of the
    job to mark `abandoned`, and so does a source that cannot be reached to record the end.

    The run's start is written under the lock (see `HeldLock.transaction`): run numbers
    are handed out only while the lock is held, so a run that lost its lock always has a
    lower number than the run that holds it.

    Raises:
        JobBusy: another process runs the same job.
        NotInitialized: `tidegate init` has not been run.
        SourceUnavailable: the connection to the source was lost.
        LockLost: the job's lock was lost during the run (a SourceUnavailable).
    """
    with job_lock(db, job, wait_seconds=wait_seconds) as lock:
        try:
            with lock.transaction(f"starting a run of job {job!r}") as conn:
                record = runs.start_in(db, conn, job)
        except sa.exc.OperationalError as error:
            raise _unavailable(error) from error
        counters = Run(run_number=record.run_number, lock=lock)
        try:
            yield counters
        except BaseException as error:
            try:
                _finish(db, record, "failed", counters, str(error) or type(error).__name__)
            except sa.exc.DBAPIError as lost:
                if not _is_connection_lost(lost):
                    raise
                # Left `running`: the run's own error says more than this one would.
            if _is_connection_lost(error):
                raise _unavailable(error) from error
            raise
        try:
            _finish(db, record, "succeeded", counters)
        except sa.exc.DBAPIError as lost:
            if not _is_connection_lost(lost):
                raise
            raise _unavailable(lost) from lost


def _finish(
    db: Database, record: RunRecord, status: RunStatus, counters: RunCounters, error: str = ""
) -> None:
    """Record the end of a run, once more on a fresh connection if the server ended the
    session (after the pool's pre-ping). The update is by run number, so making it twice
    is harmless."""
    try:
        runs.finish(db, record, status, counters, error)
    except sa.exc.DBAPIError as lost:
        if not lost.connection_invalidated:
            raise
        runs.finish(db, record, status, counters, error)


def _unavailable(error: BaseException) -> SourceUnavailable:
    return connection_lost(error, hint="run it again: the run is redone from where it stopped")


def _is_connection_lost(error: BaseException) -> bool:
    """An operational error of SQLAlchemy or of a driver used directly (COPY): the server
    went away or ended the session."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError) or any(
        kind.__name__ in ("OperationalError", "InterfaceError") for kind in type(error).__mro__
    )
