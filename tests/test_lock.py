"""Job locks between real processes, the run history they guard, and sessions the server
ends under them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.test_cli import assert_one_error, run
from tidegate.api import open_source
from tidegate.errors import JobBusy, SourceUnavailable
from tidegate.jobs import recorded_run
from tidegate.lock import job_lock, lock_file_path

HOLDER = textwrap.dedent("""
    import sys, time, tidegate
    from tidegate.api import open_source
    from tidegate.lock import job_lock, lock_file_path
    config = tidegate.load_config(sys.argv[1], [], environ={})
    with job_lock(open_source(config), sys.argv[2]):
        print("LOCKED", flush=True)
        time.sleep(float(sys.argv[3]))
""")


def hold_lock(source: Source, job: str, seconds: float) -> subprocess.Popen[str]:
    """Start a process that holds a job lock for `seconds`, once it has it."""
    source.config()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(source.tmp_path / "holder.toml"), job, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "LOCKED"
    return holder


@pytest.fixture
def initialized(source: Source) -> Source:
    return _initialized(source)


@pytest.fixture
def initialized_server(server_source: Source) -> Source:
    return _initialized(server_source)


def _initialized(source: Source) -> Source:
    table = sa.Table(
        "item", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)
    )
    source.create(table)
    tidegate.init(source.config())
    (source.tmp_path / "holder.toml").write_text(
        f'[source]\nurl = "{source.url}"\nschema = "{source.schema}"\n'
    )
    return source


def test_second_process_is_refused_then_gets_the_lock_when_the_holder_dies(
    initialized: Source,
) -> None:
    db = open_source(initialized.config())
    holder = hold_lock(initialized, "tables", 60)
    try:
        with pytest.raises(JobBusy) as busy, job_lock(db, "tables"):
            pass
        assert "job 'tables' is already running in another process" in str(busy.value)
        with job_lock(db, "ongoing"):  # other jobs are not blocked
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with job_lock(db, "tables", wait_seconds=10):  # the dead holder's lock is gone
        pass


def test_wait_queues_behind_the_holder(initialized: Source) -> None:
    db = open_source(initialized.config())
    holder = hold_lock(initialized, "claim", 1.5)
    started = time.monotonic()
    with job_lock(db, "claim", wait_seconds=30):
        waited = time.monotonic() - started
    holder.wait()
    assert 0.5 < waited < 30


def test_cli_refuses_a_busy_job_with_one_line(initialized: Source) -> None:
    holder = hold_lock(initialized, "init", 60)
    settings = ["--set", f"source.url={initialized.url}"]
    if initialized.schema:
        settings += ["--set", f"source.schema={initialized.schema}"]
    try:
        code, _out, err = run(initialized.tmp_path, *settings, "init")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert code == 1
    assert_one_error(err, r"Error: job 'init' is already running in another process.*")
    code, _out, err = run(initialized.tmp_path, *settings, "init", "--wait", "10")
    assert code == 0, err


def test_failed_run_is_recorded_with_its_error(initialized: Source) -> None:
    db = open_source(initialized.config())
    with pytest.raises(RuntimeError), recorded_run(db, "tables") as counters:
        counters.rows = 5
        raise RuntimeError("disk on fire")
    with recorded_run(db, "tables") as counters:
        counters.rows, counters.files, counters.bytes = 7, 1, 1234
    latest, failed = tidegate.list_runs(initialized.config(), job="tables")
    assert (failed.run_number, failed.status, failed.rows, failed.error) == (
        1,
        "failed",
        5,
        "disk on fire",
    )
    assert (latest.run_number, latest.status, latest.rows, latest.files, latest.bytes) == (
        2,
        "succeeded",
        7,
        1,
        1234,
    )
    assert latest.ended_at is not None and latest.ended_at >= latest.started_at


# --- sessions the server ends -----------------------------------------------------------
# The pool's pre-ping finds a session that ended while it sat in the pool. What it cannot
# see is a session ended after the ping: by an administrator (pg_terminate_backend, KILL),
# a restart or failover, or, in the flaky run this reproduces, by another test session's
# terminate on the same server. The listener below ends the session just before chosen
# statements run, and waits until the server has let it go.


def _is_lock(statement: str) -> bool:
    return "pg_try_advisory_lock(" in statement or "GET_LOCK(" in statement


def _is_run_end(statement: str) -> bool:
    return statement.startswith("UPDATE") and "ended_us=" in statement  # runs.finish


@contextmanager
def sessions_ended_before(
    source: Source, matches: Callable[[str], bool], times: int
) -> Iterator[list[int]]:
    """The server ends the session of each of the next `times` statements `matches`
    picks, before it runs; yields the ids of the sessions ended so far."""
    admin = sa.create_engine(source.url, isolation_level="AUTOCOMMIT")
    ended: list[int] = []

    def end_session(conn: sa.Connection, _cursor: Any, statement: str, *_rest: Any) -> None:
        if len(ended) >= times or not matches(statement):
            return
        dbapi: Any = conn.connection.dbapi_connection
        if source.dialect == "postgresql":
            session = int(dbapi.info.backend_pid)
            end, alive = "SELECT pg_terminate_backend({})", "pg_stat_activity WHERE pid = {}"
        else:
            session = int(dbapi.thread_id())
            end, alive = "KILL {}", "information_schema.processlist WHERE id = {}"
        ended.append(session)
        with admin.connect() as other:
            other.exec_driver_sql(end.format(session))
            deadline = time.monotonic() + 10
            while other.exec_driver_sql(f"SELECT count(*) FROM {alive.format(session)}").scalar():
                assert time.monotonic() < deadline, f"session {session} outlived its end"
                time.sleep(0.01)

    sa.event.listen(sa.Engine, "before_cursor_execute", end_session)
    try:
        yield ended
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", end_session)
        admin.dispose()


def test_a_lock_session_the_server_ends_is_taken_again_on_a_fresh_one(
    initialized_server: Source,
) -> None:
    db = open_source(initialized_server.config())
    other = open_source(initialized_server.config())
    try:
        with (
            sessions_ended_before(initialized_server, _is_lock, times=1) as ended,
            job_lock(db, "tables"),
        ):
            assert len(ended) == 1
            with pytest.raises(JobBusy), job_lock(other, "tables"):
                pass  # the lock is held, on the fresh session
        with job_lock(other, "tables"):  # and released after
            pass
    finally:
        db.engine.dispose()
        other.engine.dispose()


def test_a_lock_session_the_server_keeps_ending_is_one_clear_error_then_recovered(
    initialized_server: Source,
) -> None:
    source = initialized_server
    settings = ["--set", f"source.url={source.url}"]
    if source.schema:
        settings += ["--set", f"source.schema={source.schema}"]
    with sessions_ended_before(source, _is_lock, times=2) as ended:
        code, _out, err = run(source.tmp_path, *settings, "export", "tables")
    assert code == 1
    assert not err.startswith("Error: unexpected "), err  # an error tidegate did not foresee
    assert_one_error(
        err,
        r"Error: the connection to the source was lost while taking the lock of job "
        r"'tables' \(on 2 connections\): .*",
    )
    assert len(ended) == 2  # a fresh session was tried
    code, _out, err = run(source.tmp_path, *settings, "export", "tables")
    assert code == 0, err
    assert [r.status for r in tidegate.list_runs(source.config(), job="tables")] == ["succeeded"]


@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "fails"])
def test_a_run_end_whose_session_the_server_ends_is_recorded_on_a_fresh_one(
    initialized_server: Source, fails: bool
) -> None:
    db = open_source(initialized_server.config())
    try:
        with (
            sessions_ended_before(initialized_server, _is_run_end, times=1) as ended,
            pytest.raises(RuntimeError) if fails else nullcontext(),
            recorded_run(db, "tables") as counters,
        ):
            counters.rows = 3
            if fails:
                raise RuntimeError("disk on fire")
        assert len(ended) == 1
    finally:
        db.engine.dispose()
    (record,) = tidegate.list_runs(initialized_server.config(), job="tables")
    assert (record.status, record.rows) == ("failed" if fails else "succeeded", 3)


@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "fails"])
def test_a_run_end_the_server_keeps_cutting_off_is_one_clear_error(
    initialized_server: Source, fails: bool
) -> None:
    db = open_source(initialized_server.config())
    expected = RuntimeError if fails else SourceUnavailable
    try:
        with (
            sessions_ended_before(initialized_server, _is_run_end, times=2) as ended,
            pytest.raises(expected) as raised,
            recorded_run(db, "tables"),
        ):
            if fails:
                raise RuntimeError("disk on fire")  # the run's own error is the one raised
        assert len(ended) == 2
        if not fails:
            assert str(raised.value).startswith("the connection to the source was lost: ")
        with recorded_run(db, "tables"):  # the run left `running` is marked abandoned
            pass
    finally:
        db.engine.dispose()
    statuses = [r.status for r in tidegate.list_runs(initialized_server.config(), job="tables")]
    assert statuses == ["succeeded", "abandoned"]


# Commands outside run history (init, uninstall, entity commands) hold a job lock too, and
# a session the server ends under one of their statements is the same one line.
def _creates(statement: str) -> bool:
    return statement.lstrip().upper().startswith("CREATE")


def _drops(statement: str) -> bool:
    return statement.lstrip().upper().startswith("DROP")


def _updates_an_entity(statement: str) -> bool:
    return statement.startswith("UPDATE") and "tidegate_entity" in statement


@pytest.mark.parametrize(
    ("command", "statement", "doing"),
    [
        (["init"], _creates, " while installing change capture"),
        (
            ["entities", "enable", "--all", "--ongoing"],
            _creates,
            " while installing entity capture",
        ),
        (["entities", "disable", "ITEM"], _updates_an_entity, " while removing entity capture"),
        (["entities", "reset", "ITEM"], _updates_an_entity, ""),
        (["uninstall", "--yes"], _drops, " while removing change capture"),
    ],
    ids=["init", "enable", "disable", "reset", "uninstall"],
)
def test_a_command_whose_session_the_server_ends_is_one_clear_error_then_recovered(
    initialized_server: Source, command: list[str], statement: Callable[[str], bool], doing: str
) -> None:
    source = initialized_server
    settings = ["--set", f"source.url={source.url}"]
    if source.schema:
        settings += ["--set", f"source.schema={source.schema}"]
    code, _out, err = run(source.tmp_path, *settings, "entities", "enable", "ITEM", "--ongoing")
    assert code == 0, err
    with sessions_ended_before(source, statement, times=1) as ended:
        code, _out, err = run(source.tmp_path, *settings, *command)
    assert len(ended) == 1
    assert code == 1
    assert_one_error(err, rf"Error: the connection to the source was lost{doing}: .*")
    code, _out, err = run(source.tmp_path, *settings, *command)
    assert code == 0, err


# --- the SQLite lock file as an attacker would use it ------------------------------------
# Another local user who can write where the lock file lies plants something in its place
# (a symbolic link or a hard link to a file the victim owns, a FIFO) before the victim's
# next run. The run must refuse in one line and leave the planted target untouched.


def _planted_runs(source: Source, plant: Callable[[Path, Path], None]) -> tuple[int, str, Path]:
    victim = source.tmp_path / "victim.db"
    victim.write_bytes(b"precious bytes the lock must never touch\n" * 100)
    lock_path = lock_file_path(str(source.tmp_path / "source.db"), "tables")
    lock_path.unlink(missing_ok=True)
    plant(lock_path, victim)
    source.config()
    code, _out, err = run(source.tmp_path, "export", "tables")
    return code, err, victim


PLANTS: list[Any] = [
    pytest.param(
        lambda lock, victim: lock.symlink_to(victim), "it is a symbolic link", id="symlink"
    ),
    pytest.param(
        lambda lock, victim: os.link(victim, lock), "it has 2 hard links.*", id="hardlink"
    ),
    pytest.param(lambda lock, _victim: os.mkfifo(lock), "it is not a regular file", id="fifo"),
    pytest.param(lambda lock, _victim: lock.mkdir(), "it is not a regular file", id="directory"),
]


@pytest.mark.parametrize(("plant", "problem"), PLANTS)
def test_a_planted_lock_file_is_refused_and_its_target_untouched(
    sqlite_source: Source, plant: Callable[[Path, Path], None], problem: str
) -> None:
    _initialized(sqlite_source)
    source_before = (sqlite_source.tmp_path / "source.db").read_bytes()
    started = time.monotonic()
    code, err, victim = _planted_runs(sqlite_source, plant)
    assert time.monotonic() - started < 30  # a FIFO never blocks the open
    assert code == 1
    assert_one_error(err, rf"Error: cannot use the lock file of job 'tables' at .*: {problem}")
    assert victim.read_bytes() == b"precious bytes the lock must never touch\n" * 100
    assert (sqlite_source.tmp_path / "source.db").read_bytes() == source_before


def test_the_lock_file_lies_beside_the_database_and_is_never_truncated(
    sqlite_source: Source,
) -> None:
    _initialized(sqlite_source)
    lock_path = lock_file_path(str(sqlite_source.tmp_path / "source.db"), "tables")
    assert lock_path.parent == sqlite_source.tmp_path
    code, _out, err = run(sqlite_source.tmp_path, "export", "tables")
    assert code == 0, err
    assert lock_path.is_file() and not lock_path.is_symlink()
    # A lock file of ours that holds more than a pid keeps its bytes past the pid: the lock
    # only ever writes its fixed-width pid in place.
    lock_path.write_bytes(b"x" * 64)
    code, _out, err = run(sqlite_source.tmp_path, "export", "tables")
    assert code == 0, err
    assert len(lock_path.read_bytes()) == 64 and lock_path.read_bytes().endswith(b"x" * 44)


def test_a_symlinked_database_shares_its_lock_with_the_real_path(sqlite_source: Source) -> None:
    _initialized(sqlite_source)
    alias = sqlite_source.tmp_path / "alias" / "link.db"
    alias.parent.mkdir()
    alias.symlink_to(sqlite_source.tmp_path / "source.db")
    assert lock_file_path(str(alias), "tables") == lock_file_path(
        str(sqlite_source.tmp_path / "source.db"), "tables"
    )
