"""A job whose lock the server takes away while it runs: fenced, never doubled.

A PostgreSQL advisory lock or a MariaDB ``GET_LOCK`` lives as long as the session that
took it. When the server ends that session in the middle of a run (an idle timeout, an
administrator's ``pg_terminate_backend`` or ``KILL``, a failover), the lock is gone and a
second process can start the same job. The tests here end the lock's session on purpose,
at chosen points of real runs, let a second process run the job meanwhile, then let the
first one go on, and show that:

(a) the first run stops with one clear `Error:` line before its next step that must not
    happen twice (planning or publishing a folder, marking it published, writing a run's
    manifest, marking an initial export complete, removing exported queue entries);
(b) the second process, which took the lock meanwhile, completes normally;
(c) nothing is lost, doubled or forked: `verify` passes, and a final export and load
    leave the target equal to the source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.entities.test_initial import enabled_orders
from tests.entities.test_ongoing import change_randomly
from tests.load.conftest import TargetDb
from tests.load.helpers import assert_target_equals_source
from tests.load.test_roundtrip import ENTITY_TABLES, change
from tests.tables.helpers import sample_tables
from tests.test_cli import assert_one_error, run
from tidegate import api, lock
from tidegate.api import open_source
from tidegate.errors import JobBusy, LockLost
from tidegate.lock import job_lock, lock_name
from tidegate.sources.postgresql import PostgresSource
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
                params = PostgresSource.server_lock.params(name)  # type: ignore[union-attr]
                found = conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND database = (SELECT oid FROM pg_database "
                        "WHERE datname = current_database()) "
                        "AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid)"
                    ),
                    {"high": params["high"], "low": params["low"]},
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
                if db.dialect.name == "postgresql"
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


# --- real runs, their lock's session ended at chosen points -----------------------------

# The run to fence, as the CLI runs it. Its third argument names where to pause: at the
# check before a step ("fence:<regular expression>" matched against the step's name), before
# a statement ("statement:<regular expression>") or while files are being written. It
# prints PAUSED there (once) and waits for a line on stdin.
PAUSED_RUN = textwrap.dedent(r"""
    import re, sys
    import sqlalchemy as sa
    from tidegate import lock
    from tidegate.cli import app
    from tidegate.entities import files
    from tidegate.formats import tablezip

    config, job, point = sys.argv[1:4]
    paused = []

    def pause():
        if not paused:
            paused.append(True)
            print("PAUSED", flush=True)
            sys.stdin.readline()

    if point.startswith("fence:"):
        step = re.compile(point.removeprefix("fence:"))
        confirm, transaction = lock._ServerLock.confirm, lock._ServerLock.transaction

        def paused_confirm(self, doing):
            if step.search(doing):
                pause()
            return confirm(self, doing)

        def paused_transaction(self, doing):
            if step.search(doing):
                pause()
            return transaction(self, doing)

        lock._ServerLock.confirm = paused_confirm
        lock._ServerLock.transaction = paused_transaction

    if point.startswith("statement:"):
        statement = re.compile(point.removeprefix("statement:"))

        @sa.event.listens_for(sa.Engine, "before_cursor_execute")
        def before(conn, cursor, text, parameters, context, executemany):
            if statement.search(" ".join(text.lower().split())):
                pause()

    if point == "writing" and job == "tables":  # inside the zip, between two members
        add = tablezip.TableZipWriter.add

        def paused_add(self, name, chunks, **options):
            if name.endswith(".csv"):
                pause()
            return add(self, name, chunks, **options)

        tablezip.TableZipWriter.add = paused_add

    if point == "writing" and job != "tables":  # a file half written
        write = files.WorkerFiles.write

        def paused_write(self, records):
            write(self, records)
            if self._records >= 2:
                pause()

        files.WorkerFiles.write = paused_write

    threads = [] if job == "tables" else ["--threads", "1"]
    sys.argv = ["tidegate", "--config", config, "export", job, *threads]
    app()
""")

TABLE_POINTS = {
    # After reading where the chain stands, before claiming: going on from there, an
    # unfenced run recorded a plan that forked the chain.
    "claiming": r"statement:^update \S*tidegate_counter",
    "planning": "fence:^planning ",
    "writing": "writing",
    "publishing": "fence:^publishing ",
    "recording": "fence:^recording ",
}
ENTITY_POINTS = {
    "writing": "writing",
    "manifest": "fence:^writing the manifest",
    "complete": "fence:complete$",  # initial only
    "removing": "fence:^removing the queue entries",  # ongoing only
}


def config_file(source: Source) -> Path:
    path = source.tmp_path / "fenced.toml"
    path.write_text(
        f'[source]\nurl = "{source.url}"\nschema = "{source.schema}"\n'
        f'[output]\nlocation = "{source.tmp_path / "exports"}"\n'
        f'[target]\nurl = "sqlite:///{source.tmp_path / "target.db"}"\n'
    )
    return path


def cli(source: Source, *args: str) -> tuple[int, str, str]:
    return run(source.tmp_path, "--config", str(config_file(source)), *args)


def paused_run(source: Source, job: str, point: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSED_RUN, str(config_file(source)), job, point],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "PAUSED":
        process.kill()
        _out, err = process.communicate(timeout=30)
        raise AssertionError(f"the run did not reach {point}: {line!r} {err}")
    return process


def resume(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate("go\n", timeout=120)
    return process.returncode, out, err


def fenced_then_taken_over(source: Source, job: str, point: str) -> str:
    """Pause a run at `point`, end its lock's session, run the job to completion in
    another process, then let the first run go on; returns that run's stderr."""
    first = paused_run(source, job, point)
    try:
        end_lock_session(source, job)
        code, _out, err = cli(
            source, "export", job, *([] if job == "tables" else ["--threads", "1"])
        )
        assert code == 0, err  # (b)
    finally:
        code, out, err = resume(first)
    assert code == 1, out + err  # (a)
    assert not err.startswith("Error: unexpected "), err
    assert_one_error(
        err,
        rf"Error: the lock of job '{job}' was lost before .+: the server ended the session "
        r"that held it \(.+\)",
    )
    return err


def assert_runs(source: Source, job: str, error: str) -> None:
    """The fenced run is recorded failed with its error; the one that took over succeeded."""
    runs = tidegate.list_runs(source.config(), job=job)  # type: ignore[arg-type]
    by_number = {r.run_number: r for r in runs}
    assert by_number[1].status == "failed" and by_number[1].error in error, by_number[1]
    assert by_number[2].status == "succeeded", by_number[2]
    assert "running" not in {r.status for r in runs}


def folder_digests(exports: Path) -> dict[str, str]:
    return {
        zip_path.parent.name: hashlib.sha1(zip_path.read_bytes()).hexdigest()
        for zip_path in exports.glob("export_*/*.zip")
    }


@pytest.mark.slow
@pytest.mark.parametrize("point", list(TABLE_POINTS))
def test_a_table_export_that_loses_its_lock_stops_and_the_other_run_wins(
    server_source: Source, point: str
) -> None:
    source = server_source
    source.create(*sample_tables())
    tidegate.init(source.config())
    rng = random.Random(8)
    change(source, rng, 25)
    error = fenced_then_taken_over(source, "tables", TABLE_POINTS[point])
    exports = source.tmp_path / "exports"
    published = folder_digests(exports)
    assert len(published) == 1, published  # one folder, written by one run
    assert_runs(source, "tables", error)
    staging = exports / ".tidegate-staging"
    assert not staging.exists() or not any(staging.iterdir()), "an attempt was left behind"

    # (c) the chain goes on from there, unforked, and loads into a target equal to the source
    change(source, rng, 15)
    code, _out, err = cli(source, "export", "tables", "--until-caught-up")
    assert code == 0, err
    assert {k: v for k, v in folder_digests(exports).items() if k in published} == published
    code, out, err = cli(source, "verify")
    assert code == 0, out + err
    code, _out, err = cli(source, "load")
    assert code == 0, err
    target = TargetDb("sqlite", f"sqlite:///{source.tmp_path / 'target.db'}")
    assert_target_equals_source(source, target, "parent", "child line")
    target.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("job", "point"),
    [
        ("initial", "writing"),
        ("initial", "manifest"),
        ("initial", "complete"),
        ("ongoing", "writing"),
        ("ongoing", "manifest"),
        ("ongoing", "removing"),
    ],
)
def test_an_entity_export_that_loses_its_lock_stops_and_the_other_run_wins(
    server_source: Source, job: str, point: str
) -> None:
    source = server_source
    config = enabled_orders(source, 30)
    if job == "ongoing":
        api.export_initial(config, threads=1)  # run 1 of `initial`
        change_randomly(source, 3)
    error = fenced_then_taken_over(source, job, ENTITY_POINTS[point])
    assert_runs(source, job, error)
    statuses = {s.entity.name: s for s in api.entities_list(config)}
    assert statuses["ORDERS"].initial_status == "complete"
    if job == "ongoing":
        assert statuses["ORDERS"].queue_depth == 0  # the run that took over removed them

    # (c) every run with a manifest is whole, and the runs load into an equal target
    change_randomly(source, 4)
    code, _out, err = cli(source, "export", "ongoing", "--threads", "1")
    assert code == 0, err
    code, out, err = cli(source, "verify")
    assert code == 0, out + err
    code, _out, err = cli(source, "load")
    assert code == 0, err
    target = TargetDb("sqlite", f"sqlite:///{source.tmp_path / 'target.db'}")
    assert_target_equals_source(source, target, *ENTITY_TABLES, trimmed=True)
    target.dispose()


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
    assert location.read_bytes("export_1_x", "export_1_x.zip", limit=64) == b"second"
    assert location.read_bytes("export_1_x", "export_1_x.extracted.xml", limit=64) == b"manifest"
    assert location.folders() in ([STAGING, "export_1_x"], ["export_1_x"])
    assert location.files(STAGING) == [] == location._entries("directory", location.path(STAGING))
