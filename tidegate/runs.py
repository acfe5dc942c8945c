"""Run history: every run of every job, with its status, times and counts.

A run is written as `running` when it starts and finished as `succeeded` or `failed`. A run
whose process died stays `running` until the next run of its job takes the job lock and
marks it `abandoned`: only the lock holder can know that nobody else is running.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from tidegate import control, logs
from tidegate.db import Database
from tidegate.errors import NotInitialized
from tidegate.model import JobName, RunRecord, RunStatus, from_us, now_us

_run = control.run


@dataclass
class RunCounters:
    """What a run has produced so far; the job updates it, the run record stores it.
    `run_number` is the run's own number, for names that carry it."""

    run_number: int = 0
    rows: int = 0
    files: int = 0
    bytes: int = 0


def require_installed(db: Database, conn: Connection) -> None:
    """Raise NotInitialized unless `tidegate init` has created current control tables."""
    version = control.installed_version(db, conn)
    if version is None:
        raise NotInitialized(
            f"tidegate is not set up in {db.display_url}",
            "run `tidegate init` first",
        )
    if version != control.SCHEMA_VERSION:
        raise NotInitialized(
            f"tidegate's control tables in {db.display_url} are version {version}; this "
            f"tidegate needs version {control.SCHEMA_VERSION}",
            "export what is pending with the tidegate that installed them, then run "
            "`tidegate uninstall` and `tidegate init`",
        )


def start(db: Database, job: JobName, *, started_us: int | None = None) -> RunRecord:
    """Record the start of a run; the caller holds the job's lock.

    Runs of the same job left `running` by a dead process are marked `abandoned`.
    """
    with db.begin(write=True) as raw:
        return start_in(db, raw, job, started_us=started_us)


def start_in(
    db: Database, raw: Connection, job: JobName, *, started_us: int | None = None
) -> RunRecord:
    """`start`, in the caller's transaction (a job's lock transaction)."""
    started = started_us if started_us is not None else now_us()
    require_installed(db, raw)
    conn = control.bind(db, raw)
    conn.execute(
        _run.update()
        .where(_run.c.job == job, _run.c.status == "running")
        .values(status="abandoned", error="the process running it stopped")
    )
    last = conn.execute(sa.select(sa.func.max(_run.c.run_number)).where(_run.c.job == job)).scalar()
    record = RunRecord(
        job=job,
        run_number=(last or 0) + 1,
        status="running",
        started_at=from_us(started),
    )
    conn.execute(
        _run.insert().values(
            job=job,
            run_number=record.run_number,
            status="running",
            started_us=started,
            row_count=0,
            file_count=0,
            byte_count=0,
            error="",
        )
    )
    logs.run_started(record)
    return record


def finish(
    db: Database, record: RunRecord, status: RunStatus, counters: RunCounters, error: str = ""
) -> RunRecord:
    """Record the end of a run and return its final record."""
    ended = now_us()
    with db.begin(write=True) as raw:
        control.bind(db, raw).execute(
            _run.update()
            .where(_run.c.job == record.job, _run.c.run_number == record.run_number)
            .values(
                status=status,
                ended_us=ended,
                row_count=counters.rows,
                file_count=counters.files,
                byte_count=counters.bytes,
                error=error,
            )
        )
    final = RunRecord(
        record.job,
        record.run_number,
        status,
        record.started_at,
        from_us(ended),
        counters.rows,
        counters.files,
        counters.bytes,
        error,
    )
    logs.run_ended(final)
    return final


def history(
    db: Database, *, job: JobName | None = None, limit: int | None = None
) -> list[RunRecord]:
    """Runs, newest first."""
    query = sa.select(_run).order_by(_run.c.started_us.desc(), _run.c.run_number.desc())
    if job is not None:
        query = query.where(_run.c.job == job)
    if limit is not None:
        query = query.limit(limit)
    with db.engine.connect() as raw:
        require_installed(db, raw)
        return [_record(row) for row in control.bind(db, raw).execute(query)]


def _record(row: Row[tuple[object, ...]]) -> RunRecord:
    m = row._mapping
    ended = m["ended_us"]
    return RunRecord(
        job=m["job"],
        run_number=m["run_number"],
        status=m["status"],
        started_at=from_us(m["started_us"]),
        ended_at=from_us(ended) if ended is not None else None,
        rows=m["row_count"],
        files=m["file_count"],
        bytes=m["byte_count"],
        error=m["error"],
    )
