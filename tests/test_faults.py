"""Faults beyond kills: a full disk and a read-only output location during an export, a
source connection cut mid-stream, a target connection cut mid-load. Each ends with one
clear error line and exit 1, nothing half-published or half-applied, and a clean
recovery by the next run."""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.entities.test_initial import fill, order_tables
from tests.load.conftest import make_target
from tests.load.helpers import assert_target_equals_source
from tests.load.test_roundtrip import change
from tests.tables.helpers import assert_rebuild_equals_source, sample_tables
from tests.test_cli import assert_one_error, run
from tidegate import api


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs the right to mount, as root in a container has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)


def filled_source(source: Source, rows: int = 60) -> tidegate.Config:
    source.create(*sample_tables())
    config = source.config()
    tidegate.init(config)
    change(source, random.Random(2), rows)
    return config


def export_cli(source: Source, location: Path) -> tuple[int, str, str]:
    config = (
        f'[source]\nurl = "{source.url}"\n'
        + (f'schema = "{source.schema}"\n' if source.schema else "")
        + f'[output]\nlocation = "{location}"\n'
    )
    return run(source.tmp_path, "export", "tables", config=config)


def published(location: Path) -> list[str]:
    return sorted(p.name for p in location.glob("export_*"))


def test_a_full_disk_stops_the_export_and_the_next_run_recovers(
    sqlite_source: Source, small_disk: Path
) -> None:
    filled_source(sqlite_source)
    with sqlite_source.engine().begin() as conn:  # about 1 MB of random text: no room
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
            "INSERT INTO parent (id, label) SELECT i, hex(randomblob(190)) FROM n"
        )
    location = small_disk / "exports"
    code, _out, err = export_cli(sqlite_source, location)
    assert code == 1
    assert_one_error(err, r"Error: .*No space left on device.*")
    assert published(location) == []  # nothing half-published
    remount(small_disk, "size=64m")
    code, _out, err = export_cli(sqlite_source, location)
    assert code == 0, err
    assert len(published(location)) == 1
    assert_rebuild_equals_source(sqlite_source, location, *sample_tables())


def test_a_read_only_location_stops_the_export_and_the_next_run_recovers(
    sqlite_source: Source, small_disk: Path
) -> None:
    filled_source(sqlite_source, rows=10)
    location = small_disk / "exports"
    location.mkdir()
    remount(small_disk, "ro")
    code, _out, err = export_cli(sqlite_source, location)
    assert code == 1
    assert_one_error(err, r"Error: .*[Rr]ead-only file system.*")
    remount(small_disk, "rw")
    code, _out, err = export_cli(sqlite_source, location)
    assert code == 0, err
    assert_rebuild_equals_source(sqlite_source, location, *sample_tables())


@pytest.fixture
def pg_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    from tests.conftest import _make_source

    yield from _make_source(request, "postgresql", tmp_path)


def terminate_backends(url: str, application_name: str) -> int:
    """Cut every connection of this test's tidegate from the server.

    Only in the URL's own database: pg_stat_activity lists the whole server, and another
    test session running this test at the same time uses the same application name (its
    next run's connections would be cut too, at any statement).
    """
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ),
            {"name": application_name},
        ).scalar()
    admin.dispose()
    return int(killed or 0)


def test_a_source_connection_cut_mid_export_is_one_error_then_recovered(
    pg_source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the export's connections while its rows stream."""
    filled_source(pg_source)
    with pg_source.engine().begin() as conn:  # several chunks to stream: the cut falls inside
        conn.exec_driver_sql(
            f'INSERT INTO "{pg_source.schema}".parent (id, label) '
            "SELECT i, repeat(md5(i::text), 6) FROM generate_series(1000, 200000) AS i"
        )
    monkeypatch.setenv("TIDEGATE_NO_CLIENTS", "1")  # read by libpq in this process
    name = "tidegate-fault-test"
    url = sa.make_url(pg_source.url).update_query_dict({"application_name": name})
    pg_source.url = url.render_as_string(hide_password=False)
    from tidegate.tables import readers

    original = readers.CopyReader.rows

    def rows_then_cut(self: object, *args: object) -> Iterator[bytes]:
        chunks = original(self, *args)  # type: ignore[arg-type]
        first = next(chunks, None)
        terminate_backends(pg_source.url, name)
        if first is not None:
            yield first
        yield from chunks

    monkeypatch.setattr(readers.CopyReader, "rows", rows_then_cut)
    code, _out, err = export_cli(pg_source, pg_source.tmp_path / "exports")
    assert code == 1
    assert not err.startswith("Error: unexpected "), err  # an error tidegate did not foresee
    assert_one_error(err, r"Error: .*(terminat|connection|closed|lost).*")
    monkeypatch.setattr(readers.CopyReader, "rows", original)
    code, _out, err = export_cli(pg_source, pg_source.tmp_path / "exports")
    assert code == 0, err
    assert_rebuild_equals_source(pg_source, pg_source.tmp_path / "exports", *sample_tables())


def test_a_target_connection_cut_mid_load_is_one_error_then_recovered(
    request: pytest.FixtureRequest, sqlite_source: Source, tmp_path: Path
) -> None:
    target = make_target(request, "postgresql", tmp_path)
    name = "tidegate-fault-load"
    target.url = (
        sa.make_url(target.url)
        .update_query_dict({"application_name": name})
        .render_as_string(hide_password=False)
    )
    filled_source(sqlite_source)
    config = sqlite_source.config(f"target.url={target.url}")
    tidegate.export_tables(config)
    from tidegate.load import staging

    original = staging.counted

    def counted_then_cut(*args: object) -> None:
        original(*args)  # type: ignore[arg-type]
        terminate_backends(target.url, name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(staging, "counted", counted_then_cut)
        code, _out, err = run(
            tmp_path, "load", str(tmp_path / "exports"), "--target", target.url, config=""
        )
    assert code == 1
    assert not err.startswith("Error: unexpected "), err  # an error tidegate did not foresee
    assert_one_error(err, r"Error: target .*")
    result = api.load(config)
    assert result.tables
    assert_target_equals_source(sqlite_source, target, "parent", "child line")
    target.dispose()


def test_a_sqlite_source_locked_past_the_busy_timeout_is_one_clear_line(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An application transaction that holds SQLite's write lock longer than the busy
    timeout (shortened here from 60 s) stops a run with one line, and the next run works."""
    import sqlite3

    from tidegate.sources import sqlite as sqlite_dialect

    config = filled_source(sqlite_source, rows=5)
    monkeypatch.setattr(sqlite_dialect, "BUSY_TIMEOUT_SECONDS", 0.5)
    (sqlite_source.tmp_path / "tidegate.toml").write_text(
        f'[source]\nurl = "{sqlite_source.url}"\n[output]\nlocation = "{config.output.location}"\n'
    )
    holder = sqlite3.connect(sqlite_source.url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, _out, err = run(sqlite_source.tmp_path, "export", "tables")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1
    assert_one_error(err, r"Error: the source database stayed locked by another writer .*")
    code, out, err = run(sqlite_source.tmp_path, "export", "tables")
    assert code == 0, err
    assert "snapshot" in out


def entity_cli(source: Source, location: Path, *command: str) -> tuple[int, str, str]:
    """An entity command as its own process (a hang fails it by its timeout, and the job's
    lock dies with it)."""
    options = source.cli_options(f"output.location={location}")
    done = subprocess.run(
        [sys.executable, "-m", "tidegate", *options, *command],
        cwd=source.tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TIDEGATE_CONFIG": ""},
    )
    return done.returncode, done.stdout, done.stderr


def big_orders(source: Source) -> None:
    """Orders whose records take about 2 MB gzipped: far more than the small disk holds."""
    orders = order_tables()[0]
    with source.engine().begin() as conn:
        conn.execute(
            orders.insert(),
            [
                {"region": "EU", "order_no": n, "note": secrets.token_hex(50)}
                for n in range(10_000, 30_000)
            ],
        )


@pytest.mark.parametrize("kind", ["initial", "ongoing"])
def test_a_full_disk_stops_an_entity_export_in_one_line_and_releases_the_lock(
    source: Source, small_disk: Path, kind: str
) -> None:
    source.create(*order_tables())
    fill(source, 5)
    config = source.config()
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    location = small_disk / "exports"
    if kind == "ongoing":
        code, _out, err = entity_cli(source, source.tmp_path / "elsewhere", "export", "initial")
        assert code == 0, err
    big_orders(source)
    code, _out, err = entity_cli(source, location, "export", kind, "--threads", "2")
    assert code == 1, err
    assert_one_error(err, r"Error: .*No space left on device.*")
    remount(small_disk, "size=64m")
    code, _out, err = entity_cli(source, location, "export", kind, "--threads", "2")
    assert code == 0, err  # the lock was released, and the run is redone
    code, out, err = run(
        source.tmp_path, *source.cli_options(f"output.location={location}"), "verify"
    )
    assert code == 0 and "all verified" in out, out + err
