"""The library API: every command of the CLI is one call here.

Each function takes a :class:`~tidegate.config.Config`, does one job, and returns plain
data. Errors are :class:`~tidegate.errors.TidegateError` subclasses with a message and a
hint; nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from tidegate import capture, runs
from tidegate.config import Config
from tidegate.db import Database, connect
from tidegate.jobs import recorded_run
from tidegate.lock import job_lock
from tidegate.model import Change, Claim, InitReport, JobName, RunRecord, now_us, to_us
from tidegate.runs import RunCounters


def open_source(config: Config) -> Database:
    """Connect to the configured source, checking driver, server and schema first.

    The caller owns the engine and disposes of it when done; `source` does that for a block.

    Raises:
        ConfigError: bad URL or missing driver.
        SourceUnavailable: the server refused the connection.
    """
    return connect(
        config.source.url, origin=config.origin, section="source", schema=config.source.schema_
    )


@contextmanager
def source(config: Config) -> Iterator[Database]:
    """The configured source for the duration of a block; its connections closed after."""
    db = open_source(config)
    try:
        yield db
    finally:
        db.engine.dispose()


def init(config: Config, *, wait_seconds: float = 0) -> InitReport:
    """Create tidegate's control tables and install change capture (`tidegate init`).

    Safe to run again: it picks up newly included tables and drops capture from tables no
    longer included. Recorded in run history as job ``init``.

    Raises:
        CaptureError: a selected table has no primary key, or no table is selected.
        JobBusy: another `init` is running.
    """
    with source(config) as db, job_lock(db, "init", wait_seconds=wait_seconds):
        started = now_us()
        report = capture.install(db, config.tables, config.source.timezone)
        # The run table exists only once install has created it, so the run is written
        # when it is over.
        record = runs.start(db, "init", started_us=started)
        counters = RunCounters(rows=len(report.installed) + len(report.refreshed))
        runs.finish(db, record, "succeeded", counters)
    return report


def uninstall(config: Config, *, wait_seconds: float = 0) -> list[str]:
    """Remove every trigger, function and table tidegate put in the source.

    Returns:
        The tables whose capture was removed.
    """
    with source(config) as db, job_lock(db, "init", wait_seconds=wait_seconds):
        return capture.uninstall(db)


def claim_changes(
    config: Config, *, before: datetime | None = None, wait_seconds: float = 0
) -> Claim | None:
    """Stamp every committed, unclaimed change with the next audit key.

    A change whose transaction is still open is left for a later claim, never skipped and
    never claimed twice. Recorded in run history as job ``claim``.

    Args:
        config: the configuration.
        before: claim only changes captured before this time (timezone-aware).
        wait_seconds: how long to wait for another claim to finish.

    Returns:
        The claim, or None when nothing was pending.
    """
    with source(config) as db, recorded_run(db, "claim", wait_seconds=wait_seconds) as counters:
        claimed = capture.claim(db, until_us=to_us(before) if before else None)
        counters.rows = claimed.changes if claimed else 0
    return claimed


def read_claim(config: Config, audit_key: int) -> Iterator[Change]:
    """Stream the changes claimed under an audit key, in capture order."""
    with source(config) as db:
        yield from capture.read_claim(db, audit_key)


def pending_changes(config: Config) -> dict[str, int]:
    """Committed, unclaimed changes per captured table."""
    with source(config) as db:
        with db.engine.connect() as conn:
            runs.require_installed(db, conn)
        return capture.pending_by_table(db)


def list_runs(
    config: Config, *, job: JobName | None = None, limit: int | None = None
) -> list[RunRecord]:
    """Run history, newest first (`tidegate runs`)."""
    with source(config) as db:
        return runs.history(db, job=job, limit=limit)
