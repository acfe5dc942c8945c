"""A job whose lock the server takes away while it runs.

A PostgreSQL advisory lock or a MariaDB ``GET_LOCK`` lives as long as the session that
took it. When the server ends that session while the job runs (an idle timeout, an
administrator's ``pg_terminate_backend`` or ``KILL``, a failover), the lock is gone and a
second process can start the same job. The tests here end the lock's session on purpose
and show that the held lock notices: its checks and fenced writes refuse, with one clear
error, while another process takes the lock.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.tables.helpers import sample_tables
from tidegate import lock
from tidegate.api import open_source
from tidegate.errors import JobBusy, LockLost
from tidegate.lock import job_lock, lock_name
from tidegate.storage import STAGING, Location

# --- ending the session that holds a job's lock -----------------------------------------


def lock_session(source: Source, job: str) -> int | None:
    """The server session that holds a job's lock, found as an administrator would: in
    pg_locks (of this test's database only) or with IS_USED_LOCK."""
    db = open_source(source.config())
    name = lock_name(db, job)
    db.engine.dispose()
    admin = sa.create_engine(source.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if source.dialect == "postgresql":
                key = lock._advisory_key(name)
                found = conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND database = (SELECT oid FROM pg_database "
                        "WHERE datname = current_database()) "
                        "AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid)"
                    ),
                    {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
                ).scalar()
            else:
                found = conn.execute(sa.text("SELECT IS_USED_LOCK(:name)"), {"name": name}).scalar()
    finally:
        admin.dispose()
    return int(found) if found is not None else None


def end_lock_session(source: Source, job: str) -> int:
    """End the session that holds a job's lock, and wait until the server has let it go.

    Only a session of this test's own database is ended: other test sessions share the
    server."""
    session = lock_session(source, job)
    assert session is not None, f"nobody holds the lock of job {job!r}"
    admin = sa.create_engine(source.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if source.dialect == "postgresql":
                where = "pg_stat_activity WHERE pid = :id AND datname = current_database()"
                ended = conn.execute(
                    sa.text(f"SELECT pg_terminate_backend(pid) FROM {where}"), {"id": session}
                ).scalar()
            else:
                where = "information_schema.processlist WHERE id = :id AND db = DATABASE()"
                ended = conn.execute(sa.text(f"SELECT count(*) FROM {where}"), {"id": session})
                ended = ended.scalar()
                if ended:
                    conn.exec_driver_sql(f"KILL {session}")
            assert ended, f"session {session} is not one of this test's database"
            deadline = time.monotonic() + 10
            while conn.execute(sa.text(f"SELECT count(*) FROM {where}"), {"id": session}).scalar():
                assert time.monotonic() < deadline, f"session {session} outlived its end"
                time.sleep(0.01)
    finally:
        admin.dispose()
    return session


# --- the lock itself, in this process ---------------------------------------------------


@pytest.fixture
def initialized_server(server_source: Source) -> Source:
    server_source.create(*sample_tables())
    tidegate.init(server_source.config())
    return server_source


def test_a_lock_lost_while_held_fails_every_check_and_fenced_write(
    initialized_server: Source,
) -> None:
    source = initialized_server
    db, other = open_source(source.config()), open_source(source.config())
    runs_table = db.qualified("tidegate_run")
    try:
        with job_lock(db, "tables") as held:
            held.confirm("a step")  # held: no error
            with held.transaction("a write") as conn:
                conn.exec_driver_sql(f"UPDATE {runs_table} SET error = 'held'")
            end_lock_session(source, "tables")
            with job_lock(other, "tables"):  # (b) another process can take it meanwhile
                with pytest.raises(LockLost) as lost, held.transaction("recording export_9_x"):
                    raise AssertionError("a fenced write ran without the lock")
                assert str(lost.value).startswith(
                    "the lock of job 'tables' was lost before recording export_9_x: the "
                    "server ended the session that held it ("
                )
                assert "run it again" in lost.value.hint
                with pytest.raises(LockLost, match="before publishing export_9_x: the server"):
                    held.confirm("publishing export_9_x")
                with pytest.raises(LockLost):
                    held.check("anything")  # known now, without a query
        with job_lock(db, "tables"):  # the lost lock's end released nothing of the other's
            pass
        with db.engine.connect() as conn:
            errors = conn.exec_driver_sql(f"SELECT DISTINCT error FROM {runs_table}").scalars()
            assert set(errors) == {"held"}
    finally:
        db.engine.dispose()
        other.engine.dispose()


def test_a_session_that_no_longer_holds_its_lock_is_refused(initialized_server: Source) -> None:
    """Alive, but not the holder (as behind a pooler that hands out server sessions per
    transaction): the check asks the server who holds the lock, not only whether the
    session is alive."""
    db = open_source(initialized_server.config())
    try:
        with job_lock(db, "initial") as held:
            release = (
                "SELECT pg_advisory_unlock_all()"
                if db.dialect == "postgresql"
                else f"SELECT RELEASE_LOCK('{lock_name(db, 'initial')}')"
            )
            held._conn.exec_driver_sql(release)  # type: ignore[attr-defined]
            held._conn.commit()  # type: ignore[attr-defined]
            with pytest.raises(LockLost, match="its session no longer holds it"):
                held.confirm("writing the manifest of initial run 1")
            assert lock_session(initialized_server, "initial") is None
    finally:
        db.engine.dispose()


def test_the_keep_alive_sees_a_lost_lock_without_being_asked(
    initialized_server: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock, "KEEPALIVE_SECONDS", 0.05)
    db = open_source(initialized_server.config())
    try:
        with job_lock(db, "ongoing") as held:
            end_lock_session(initialized_server, "ongoing")
            deadline = time.monotonic() + 10
            while True:
                try:
                    held.check("the next step")
                except LockLost as lost:
                    assert "the server ended the session that held it" in str(lost)
                    break
                assert time.monotonic() < deadline, "the keep-alive never saw the loss"
                time.sleep(0.02)
    finally:
        db.engine.dispose()


def idling_out(source: Source, seconds: int) -> Source:
    """The source, its sessions ended by the server after `seconds` idle (set per session,
    so nothing else on the server is touched)."""
    url = sa.make_url(source.url)
    if source.dialect == "postgresql":
        url = url.update_query_dict({"options": f"-c idle_session_timeout={seconds * 1000}"})
    else:
        url = url.update_query_dict({"init_command": f"SET SESSION wait_timeout = {seconds}"})
    return dataclasses.replace(source, url=url.render_as_string(hide_password=False))


@pytest.mark.parametrize("keep_alive", [True, False], ids=["kept-alive", "idle"])
def test_an_idle_timeout_ends_the_lock_only_without_the_keep_alive(
    initialized_server: Source, monkeypatch: pytest.MonkeyPatch, keep_alive: bool
) -> None:
    """The server ends tidegate's sessions after 2 s idle. The keep-alive keeps the lock's
    session busy enough; without it the lock is lost while the job runs, another process
    takes it, and the job's next step is refused."""
    source = idling_out(initialized_server, 2)
    monkeypatch.setattr(lock, "KEEPALIVE_SECONDS", 0.2 if keep_alive else 3600)
    db, other = open_source(source.config()), open_source(source.config())
    try:
        with job_lock(db, "tables") as held:
            time.sleep(5)  # a long stretch of work that never touches the lock's session
            if keep_alive:
                with pytest.raises(JobBusy), job_lock(other, "tables"):
                    pass
                held.confirm("publishing export_1_x")
            else:
                with (
                    job_lock(other, "tables"),
                    pytest.raises(LockLost, match="was lost before publishing"),
                ):
                    held.confirm("publishing export_1_x")
    finally:
        db.engine.dispose()
        other.engine.dispose()


# --- publishing: two attempts at one folder never mix -----------------------------------


@pytest.mark.parametrize("kind", ["directory", "memory"])
def test_an_attempt_that_lost_its_lock_never_touches_the_other_attempt(
    tmp_path: Path, kind: str
) -> None:
    """A run that lost its lock and the run that took over write the same folder at once:
    each into a staging folder of its own. The first is refused at its check (or finds its
    staging folder removed by the other, and then its check tells why), and leaves the
    folder as the other published it."""
    url = str(tmp_path / "out") if kind == "directory" else f"memory://fencing-{tmp_path.name}"
    location = Location(url)

    def refused() -> None:
        raise LockLost("the lock of job 'tables' was lost before publishing export_1_x: test")

    with pytest.raises(LockLost), location.publishing("export_1_x", confirm=refused) as first:
        first.write("export_1_x.zip", b"first")
        with location.publishing("export_1_x") as second:  # the run that took over
            second.write("export_1_x.zip", b"second")
            second.write("export_1_x.extracted.xml", b"manifest")
        first.write("export_1_x.extracted.xml", b"first manifest")
    assert location.files("export_1_x") == ["export_1_x.extracted.xml", "export_1_x.zip"]
    assert location.read_bytes("export_1_x", "export_1_x.zip") == b"second"
    assert location.read_bytes("export_1_x", "export_1_x.extracted.xml") == b"manifest"
    assert location.folders() in ([STAGING, "export_1_x"], ["export_1_x"])
    assert location.files(STAGING) == [] == location._entries("directory", location.path(STAGING))
