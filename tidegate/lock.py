"""Per-job locks held in (or beside) the source database, so two processes never run the
same job at once: a cron job and `tidegate serve` can share one source safely.

- PostgreSQL: a session advisory lock, held on a connection kept open for the job.
- MySQL/MariaDB: ``GET_LOCK``, likewise on a connection of its own.
- SQLite: an exclusive ``flock`` on a lock file named after the database file, in the
  system's temporary directory (SQLite databases are local files, so every process that can
  open one shares that directory).

All three are released by the operating system or the server when the holder dies, so a
killed run never leaves a lock behind. For the same reason a server lock is taken again on a
fresh connection when the server ends the session while the lock is being taken (see
`_locked_connection`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.db import Database, database_error, driver_reason, unavailable
from tidegate.errors import JobBusy, SourceUnavailable
from tidegate.model import JobName

POLL_SECONDS = 0.2
LOCK_ATTEMPTS = 2
"""Sessions a server lock is tried on: the first, and one fresh one if the server ended it."""
_memory_locks: dict[str, threading.Lock] = {}


def lock_name(db: Database, job: JobName) -> str:
    """A stable name for the lock of a job in one database."""
    url = db.engine.url
    where = f"{url.host or ''}:{url.port or ''}/{url.database or ''}/{db.schema or ''}"
    if db.dialect == "sqlite" and url.database and url.database != ":memory:":
        where = os.path.realpath(url.database)
    digest = hashlib.sha1(where.encode()).hexdigest()[:16]
    return f"tidegate:{digest}:{job}"


@contextmanager
def job_lock(db: Database, job: JobName, *, wait_seconds: float = 0) -> Iterator[None]:
    """Hold the lock of a job for the duration of the block.

    Args:
        db: the database the job runs against.
        job: the job name.
        wait_seconds: how long to wait for another holder to finish; 0 refuses at once.

    Raises:
        JobBusy: another process still holds the lock after ``wait_seconds``.
        SourceUnavailable: the server refused the connection, or ended the session the
            lock was being taken on twice.
    """
    name = lock_name(db, job)
    if db.dialect == "sqlite":
        database = db.engine.url.database
        if not database or database == ":memory:":
            with _memory_lock(name, job, wait_seconds):
                yield
        else:
            with _file_lock(name, job, wait_seconds):
                yield
    else:
        conn = _locked_connection(db, name, job, wait_seconds)
        try:
            yield
        finally:
            try:
                _server_unlock(db, conn, name)
            finally:
                conn.close()


def _busy(job: JobName, waited: float, holder: str = "") -> JobBusy:
    who = f" (process {holder})" if holder else ""
    waited_text = f" after waiting {waited:g} s" if waited else ""
    return JobBusy(
        f"job {job!r} is already running in another process{who}; not started{waited_text}",
        "wait for that run to finish, or pass --wait SECONDS to queue behind it",
    )


def _retry(try_once: Callable[[], bool], wait_seconds: float) -> bool:
    """Call ``try_once`` until it succeeds or ``wait_seconds`` have passed."""
    deadline = time.monotonic() + wait_seconds
    while True:
        if try_once():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _advisory_key(name: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, derived from the lock name."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)


def _locked_connection(db: Database, name: str, job: JobName, wait_seconds: float) -> Connection:
    """A connection of its own that holds the job's server lock.

    The pool's pre-ping finds a session that ended while it sat in the pool, but the server
    can also end one after the ping, before or while the lock is taken (an administrator's
    pg_terminate_backend or KILL, a restart, a failover, an idle timeout). Nothing is held
    then: a session lock goes with its session. So the lock is tried once more on a fresh
    connection, within the same ``wait_seconds``.

    Raises:
        JobBusy: another process holds the lock.
        SourceUnavailable: the server refused the connection, or ended the session on
            every attempt.
        SourceError: the server refused the lock statement.
    """
    deadline = time.monotonic() + wait_seconds
    attempt = 1
    while True:
        try:
            conn = db.engine.connect()
        except sa.exc.DBAPIError as error:
            raise unavailable(db, error) from None
        try:
            _server_lock(db, conn, name, job, max(0.0, deadline - time.monotonic()))
            return conn
        except sa.exc.DBAPIError as error:
            conn.close()
            if not error.connection_invalidated:
                raise database_error(db, error, f"taking the lock of job {job!r}") from None
            if attempt >= LOCK_ATTEMPTS:
                raise _lost(job, error) from None
            attempt += 1
        except BaseException:
            conn.close()
            raise


def _lost(job: JobName, error: sa.exc.DBAPIError) -> SourceUnavailable:
    return SourceUnavailable(
        f"the connection to the source was lost while taking the lock of job {job!r} "
        f"(on {LOCK_ATTEMPTS} connections): {driver_reason(error)}",
        "run it again; if this keeps happening, look for what ends tidegate's sessions on "
        "the server (an idle timeout, a script that terminates connections)",
    )


def _server_lock(
    db: Database, conn: Connection, name: str, job: JobName, wait_seconds: float
) -> None:
    if db.dialect == "postgresql":
        statement = sa.text("SELECT pg_try_advisory_lock(:key)")
        parameters: dict[str, object] = {"key": _advisory_key(name)}
    else:
        statement = sa.text("SELECT GET_LOCK(:name, 0)")
        parameters = {"name": name}

    def try_once() -> bool:
        return bool(conn.execute(statement, parameters).scalar())

    acquired = _retry(try_once, wait_seconds)
    conn.commit()  # the lock is session-level; end the implicit transaction around it
    if not acquired:
        raise _busy(job, wait_seconds)


def _server_unlock(db: Database, conn: Connection, name: str) -> None:
    if conn.invalidated or conn.closed:
        return  # the server dropped the session, and with it the lock
    try:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _advisory_key(name)})
        else:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
        conn.commit()
    except sa.exc.DBAPIError:
        # Either the server ended the session, and its lock went with it, or the session
        # is in a state it cannot unlock from: ending it releases the lock all the same.
        # Raising here would hide the error that ended the run (or fail one that worked).
        conn.invalidate()


@contextmanager
def _file_lock(name: str, job: JobName, wait_seconds: float) -> Iterator[None]:
    directory = Path(tempfile.gettempdir()) / "tidegate-locks"
    directory.mkdir(mode=0o777, exist_ok=True)
    path = directory / (name.replace(":", "-") + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not _retry(try_once, wait_seconds):
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise _busy(job, wait_seconds, holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _memory_lock(name: str, job: JobName, wait_seconds: float) -> Iterator[None]:
    lock = _memory_locks.setdefault(name, threading.Lock())
    if wait_seconds > 0:
        acquired = lock.acquire(timeout=wait_seconds)
    else:
        acquired = lock.acquire(blocking=False)
    if not acquired:
        raise _busy(job, wait_seconds)
    try:
        yield
    finally:
        lock.release()
