"""Per-job locks held in (or beside) the source database, so two processes never run the
same job at once: a cron job and `tidegate serve` can share one source safely.

- PostgreSQL: a session advisory lock, held on a connection kept open for the job.
- MySQL/MariaDB: ``GET_LOCK``, likewise on a connection of its own.
- SQLite: an exclusive ``flock`` on a lock file beside the database file, where SQLite
  keeps its journal (every process that can write the database can write there; see
  `lock_file_path` for why no shared temporary directory is used).

All three are released by the operating system or the server when the holder dies, so a
killed run never leaves a lock behind. For the same reason a server lock is taken again on a
fresh connection when the server ends the session while the lock is being taken (see
`_locked_connection`).

A server lock can also be lost while it is held: the server ends its session (an idle
timeout such as PostgreSQL's ``idle_session_timeout`` or MariaDB's ``wait_timeout``, an
administrator's ``pg_terminate_backend`` or ``KILL``, a failover), the lock goes with it,
and nothing tells the job. Another process can then take the lock and run the same job
while the first still runs. So a job is *fenced*: every step it must not take unless it
still holds the lock goes through the :class:`HeldLock` that `job_lock` yields, which
stops the job with :class:`~tidegate.errors.LockLost` instead:

- writes to tidegate's control tables that decide what the next run does (a run's start,
  a planned or published export, an entity's initial status, the removal of exported
  queue entries) run in a transaction *on the lock's own session* that first checks that
  the session holds the lock. A session keeps its lock until it ends, and a transaction
  whose session ends is rolled back, so such a write commits only while the lock is held;
- a step outside the database (renaming a folder into place, writing a run's manifest) is
  preceded by that check, on the lock's session, right before it.

A keep-alive thread runs the same check every `KEEPALIVE_SECONDS` while the lock is held:
an idle timeout longer than that never ends the session, and a lock lost anyway is seen
early. A SQLite lock (``flock``) cannot be lost while its process lives: its checks do
nothing, and its transactions are the database's usual ones.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.db import Database, connection_lost, database_error, driver_reason, unavailable
from tidegate.errors import JobBusy, LockLost, SourceError, SourceUnavailable
from tidegate.model import JobName
from tidegate.sources.base import ServerLock

POLL_SECONDS = 0.2
LOCK_ATTEMPTS = 2
"""Sessions a server lock is tried on: the first, and one fresh one if the server ended it."""
KEEPALIVE_SECONDS = 30.0
"""How often a held server lock's session is checked, and so kept from idling out."""
_memory_locks: dict[str, threading.Lock] = {}


def lock_name(db: Database, job: JobName) -> str:
    """A stable name for the lock of a job in one database."""
    where = db.dialect.lock_place(db.engine.url, db.schema)
    digest = hashlib.sha1(where.encode()).hexdigest()[:16]
    return f"tidegate:{digest}:{job}"


@contextmanager
def job_lock(db: Database, job: JobName, *, wait_seconds: float = 0) -> Iterator[HeldLock]:
    """Hold the lock of a job for the duration of the block.

    Args:
        db: the database the job runs against.
        job: the job name.
        wait_seconds: how long to wait for another holder to finish; 0 refuses at once.

    Yields:
        The held lock, through which the job takes its steps that must not happen twice.

    Raises:
        JobBusy: another process still holds the lock after ``wait_seconds``.
        SourceUnavailable: the server refused the connection, or ended the session the
            lock was being taken on twice.
    """
    name = lock_name(db, job)
    server_lock = db.dialect.server_lock
    database = db.engine.url.database
    if server_lock is not None:
        conn = _locked_connection(db, server_lock, name, job, wait_seconds)
        held = _ServerLock(db, job, name, server_lock, conn)
        try:
            yield held
        finally:
            held.release()
    elif not database or database == ":memory:":
        with _memory_lock(name, job, wait_seconds):
            yield HeldLock(db, job)
    else:
        with _file_lock(database, job, wait_seconds):
            yield HeldLock(db, job)


class HeldLock:
    """A job's lock while the job holds it: the gate of the job's steps that must happen
    only while no other process can be running the job.

    This base class is the lock that cannot be lost while its process lives (SQLite's
    ``flock``, or a lock within one process): its checks do nothing and its transactions
    are the database's usual ones. A server lock checks (see the module docstring).
    """

    def __init__(self, db: Database, job: JobName) -> None:
        self.db = db
        self.job = job

    def check(self, doing: str) -> None:
        """Without a query: stop if the lock is already known to be lost.

        Raises:
            LockLost: the keep-alive (or an earlier check) found the lock gone.
        """

    def confirm(self, doing: str) -> None:
        """Make sure, with the server, that the lock is still held, right before a step
        outside the database that must not happen twice.

        Args:
            doing: the step, for the message ("publishing export_…").

        Raises:
            LockLost: the lock is gone; the step must not be taken.
        """

    def transaction(self, doing: str) -> AbstractContextManager[Connection]:
        """A write transaction that commits only while the lock is held.

        Raises:
            LockLost: the lock is gone (checked first), or the session ended before the
                transaction committed; nothing of it was written.
        """
        return self.db.begin(write=True)  # type: ignore[no-any-return]


class _ServerLock(HeldLock):
    """A PostgreSQL advisory lock or MariaDB ``GET_LOCK`` held on a connection of its own.

    The connection is used by one thread at a time (`_guard`): the job's thread for checks
    and transactions, the keep-alive thread in between. Once the lock is found lost the
    connection is never used again: SQLAlchemy would reconnect an invalidated connection
    to a new session, which does not hold the lock (the ownership check sees that too).
    """

    def __init__(
        self, db: Database, job: JobName, name: str, statements: ServerLock, conn: Connection
    ) -> None:
        super().__init__(db, job)
        self._name = name
        self._statements = statements
        self._conn = conn
        self._guard = threading.Lock()
        self._lost: str | None = None  # why, once the lock is known to be gone
        self._stop = threading.Event()
        self._keeper = threading.Thread(
            target=self._keep_alive, name=f"tidegate-lock-{job}", daemon=True
        )
        self._keeper.start()

    def check(self, doing: str) -> None:
        if self._lost is not None:
            raise _lost_lock(self.job, doing, self._lost)

    def confirm(self, doing: str) -> None:
        with self._guard:
            self.check(doing)
            self._lost = self._verify()
            self.check(doing)

    @contextmanager
    def transaction(self, doing: str) -> Iterator[Connection]:
        with self._guard:
            self.check(doing)
            try:
                with self._conn.begin():
                    # In the transaction itself: a session keeps its lock until it ends,
                    # and the transaction ends with it, so nothing below commits unless
                    # the lock was held.
                    if not self._holds():
                        self._lost = _NOT_HELD
                        self.check(doing)
                    yield self._conn
            except sa.exc.DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                self._lost = _ended(error)
                raise _lost_lock(self.job, doing, self._lost) from None

    def _holds(self) -> bool:
        """Whether this session holds the lock (one query, in the current transaction)."""
        statements = self._statements
        held = self._conn.execute(sa.text(statements.held), statements.params(self._name))
        return bool(held.scalar())

    def _verify(self) -> str | None:
        """None while this session holds the lock, else why it does not; the caller
        holds `_guard`."""
        try:
            held = self._holds()
            self._conn.rollback()  # end the check's implicit transaction: never left idle in one
        except sa.exc.DBAPIError as error:
            return _ended(error) if error.connection_invalidated else _unchecked(error)
        except sa.exc.SQLAlchemyError as error:  # a connection SQLAlchemy had invalidated
            return _unchecked(error)
        return None if held else _NOT_HELD

    def _keep_alive(self) -> None:
        # Read each time round, so that tests can shorten it for a lock already held.
        while not self._stop.wait(KEEPALIVE_SECONDS):
            with self._guard:
                if self._stop.is_set() or self._lost is not None:
                    return
                self._lost = self._verify()

    def release(self) -> None:
        """Stop the keep-alive, release the lock (unless it is gone) and close the session."""
        self._stop.set()
        self._keeper.join()
        try:
            if self._lost is None:
                _server_unlock(self._statements, self._conn, self._name)
        finally:
            self._conn.close()


_NOT_HELD = "its session no longer holds it"


def _ended(error: sa.exc.DBAPIError) -> str:
    reason = driver_reason(error)
    if not (reason.startswith("(") and reason.endswith(")")):  # PyMySQL's are (code, text)
        reason = f"({reason})"
    return f"the server ended the session that held it {reason}"


def _unchecked(error: sa.exc.SQLAlchemyError) -> str:
    if isinstance(error, sa.exc.DBAPIError):
        reason = driver_reason(error)
    else:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"its session could not be checked ({reason})"


def _lost_lock(job: JobName, doing: str, reason: str) -> LockLost:
    return LockLost(
        f"the lock of job {job!r} was lost before {doing}: {reason}",
        "another run of the job may have started meanwhile, so this one stopped before that "
        "step; run it again: the next run redoes the work. If this keeps happening, look for "
        "what ends tidegate's sessions on the server (an idle timeout, a script that "
        "terminates connections, a failover)",
    )


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


def _locked_connection(
    db: Database, statements: ServerLock, name: str, job: JobName, wait_seconds: float
) -> Connection:
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
            # READ COMMITTED: the run records and plans written under the lock take no gap
            # locks, which deadlocked two jobs starting at once on MariaDB.
            conn = db.engine.connect().execution_options(**db.dialect.read_committed_options)
        except sa.exc.DBAPIError as error:
            raise unavailable(db, error) from None
        try:
            _server_lock(statements, conn, name, job, max(0.0, deadline - time.monotonic()))
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
    return connection_lost(
        error,
        f"taking the lock of job {job!r} (on {LOCK_ATTEMPTS} connections)",
        "run it again; if this keeps happening, look for what ends tidegate's sessions on "
        "the server (an idle timeout, a script that terminates connections)",
    )


def _server_lock(
    statements: ServerLock, conn: Connection, name: str, job: JobName, wait_seconds: float
) -> None:
    statement, parameters = sa.text(statements.take), statements.params(name)

    def try_once() -> bool:
        return bool(conn.execute(statement, parameters).scalar())

    acquired = _retry(try_once, wait_seconds)
    conn.commit()  # the lock is session-level; end the implicit transaction around it
    if not acquired:
        raise _busy(job, wait_seconds)


def _server_unlock(statements: ServerLock, conn: Connection, name: str) -> None:
    if conn.invalidated or conn.closed:
        return  # the server dropped the session, and with it the lock
    try:
        conn.execute(sa.text(statements.release), statements.params(name))
        conn.commit()
    except sa.exc.DBAPIError:
        # Either the server ended the session, and its lock went with it, or the session
        # is in a state it cannot unlock from: ending it releases the lock all the same.
        # Raising here would hide the error that ended the run (or fail one that worked).
        conn.invalidate()


def lock_file_path(database: str, job: JobName) -> Path:
    """Where the lock file of a job on a SQLite database lies: beside the database file,
    the way SQLite keeps its own journal there.

    Every process that can write the database can write that folder (SQLite creates its
    journal there), so they all share the lock; and no other folder is involved, so nobody
    who cannot already write beside the database can plant anything in the lock's place.
    """
    real = Path(os.path.realpath(database))
    return real.with_name(f"{real.name}-tidegate-{job}.lock")


_PID_WIDTH = 20  # the holder's pid is written padded to this width, so never truncated


@contextmanager
def _file_lock(database: str, job: JobName, wait_seconds: float) -> Iterator[None]:
    fd = _open_lock_file(database, job)
    try:

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not _retry(try_once, wait_seconds):
            holder = os.pread(fd, _PID_WIDTH, 0).decode("ascii", errors="replace").strip()
            raise _busy(job, wait_seconds, holder if holder.isdigit() else "")
        try:
            os.pwrite(fd, str(os.getpid()).ljust(_PID_WIDTH).encode("ascii"), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open_lock_file(database: str, job: JobName) -> int:
    """Open (creating if need be) a job's lock file, refusing anything another user could
    have planted there to turn the lock against us.

    The file is opened without following a symbolic link (``O_NOFOLLOW``), without
    truncating, and without blocking on a FIFO (``O_NONBLOCK``); what was opened must then
    be a regular file with one link (a hard link to another file, say the database, is
    refused) owned by this user or by the database's owner. Only then is the holder's pid
    written into it, in place.

    Raises:
        SourceError: the path holds something else, or cannot be opened.
    """
    path = lock_file_path(database, job)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        problem = _OPEN_PROBLEMS.get(error.errno or 0, error.strerror or str(error))
        raise _unsafe_lock_file(path, job, problem) from None
    try:
        found = os.fstat(fd)
        problem = _lock_file_problem(found, database)
        if problem:
            raise _unsafe_lock_file(path, job, problem)
    except BaseException:
        os.close(fd)
        raise
    return fd


_OPEN_PROBLEMS = {
    errno.ELOOP: "it is a symbolic link",
    errno.EISDIR: "it is not a regular file",
}


def _lock_file_problem(found: os.stat_result, database: str) -> str:
    """Why an opened lock file must not be used, or "" when it is safe."""
    if not stat.S_ISREG(found.st_mode):
        return "it is not a regular file"
    if found.st_nlink != 1:
        return f"it has {found.st_nlink} hard links (another file may be linked in its place)"
    owners = {os.geteuid()}
    with suppress(OSError):
        owners.add(os.stat(database).st_uid)
    if found.st_uid not in owners:
        return f"it belongs to user id {found.st_uid}, neither this user nor the database's owner"
    return ""


def _unsafe_lock_file(path: Path, job: JobName, problem: str) -> SourceError:
    return SourceError(
        f"cannot use the lock file of job {job!r} at {path}: {problem}",
        "remove that path if you do not know what put it there; tidegate creates the lock "
        "file itself, beside the database, and needs write access to the database's folder",
    )


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
