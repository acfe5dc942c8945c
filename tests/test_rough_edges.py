"""What a new user meets first (issue #17's rough edges), each through the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.entities.test_initial import enabled_orders
from tests.test_cli import assert_one_error, run
from tidegate import api
from tidegate.version import __version__


def test_version(tmp_path: Path) -> None:
    code, out, _err = run(tmp_path, "--version")
    assert (code, out.strip()) == (0, f"tidegate {__version__}")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://postgres:wrong@127.0.0.1:1/x", "Connection refused"),
        ("mysql://nobody:secret@127.0.0.1:3306/x", "Access denied"),
    ],
)
def test_a_target_that_cannot_be_reached_is_one_line(
    sqlite_source: Source, url: str, says: str
) -> None:
    sqlite_source.create(
        sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    )
    folder = sqlite_source.tmp_path
    config = f'[source]\nurl = "{sqlite_source.url}"\n'
    assert run(folder, "init", config=config)[0] == 0
    assert run(folder, "export", "tables")[0] == 0
    code, _out, err = run(folder, "--set", f"target.url={url}", "load")
    assert code == 1
    assert_one_error(err, rf"Error: \[target\] url: cannot connect to \S+: .*{says}.*")
    assert "secret" not in err and "wrong" not in err


@pytest.mark.parametrize(
    "password", ["p@ss:w/rd%#", "p%40ss%3Aw%2Frd%25%23"], ids=["raw", "encoded"]
)
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_password_with_url_characters_works(
    tmp_path: Path, pg_database: str, password: str, scheme: str
) -> None:
    """The server trusts loopback: the URL is read and the database reached (which says
    tidegate is not set up there), not refused as a URL."""
    url = sa.make_url(pg_database)
    written = f"{scheme}://{url.username}:{password}@{url.host}:{url.port or 5432}/{url.database}"
    code, out, err = run(tmp_path, "--set", f"source.url={written}", "status")
    assert code == 1
    assert_one_error(
        err, r"Error: tidegate is not set up in postgresql\+psycopg://postgres:\*\*\*@.*"
    )
    assert "p@ss" not in out + err


@pytest.mark.parametrize("command", ["verify", "load"])
def test_a_location_without_exports_is_refused(tmp_path: Path, command: str) -> None:
    config = f'[target]\nurl = "sqlite:///{tmp_path / "target.db"}"\n'
    code, _out, err = run(tmp_path, command, str(tmp_path / "nowhere"), config=config)
    assert code == 1
    assert_one_error(
        err, rf"Error: LOCATION: {re.escape(str(tmp_path / 'nowhere'))} does not exist"
    )
    (tmp_path / "empty").mkdir()
    code, _out, err = run(tmp_path, command, str(tmp_path / "empty"))
    assert code == 1
    assert_one_error(err, r"Error: LOCATION: \S+ holds no export")


def test_load_takes_one_kind_and_reports_its_progress(sqlite_source: Source) -> None:
    from tidegate import api

    config = enabled_orders(sqlite_source, 6)
    tidegate.export_tables(config, until_caught_up=True)
    api.export_initial(config, ["ORDERS"])
    steps: list[api.LoadStep] = []
    only_tables = tidegate.load(config, only="tables", progress=steps.append)
    assert only_tables.tables and not only_tables.runs
    assert steps[-1].doing == "loaded" and steps[-1].done == steps[-1].total == only_tables.rows
    assert [s.done for s in steps] == sorted(s.done for s in steps)
    folder = sqlite_source.tmp_path
    code, out, err = run(
        folder, "--set", f"source.url={sqlite_source.url}", "load", "--only", "entities"
    )
    assert code == 0, err
    assert "loaded 0 table export(s)" in out and "and 1 entity run(s)" in out


def _initialized(source: Source, extra_config: str = "") -> Path:
    """A source with one table, `tidegate init` run through the CLI; its folder, where
    tidegate.toml is."""
    source.create(sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)))
    config = f'[source]\nurl = "{source.url}"\n{extra_config}'
    assert run(source.tmp_path, "init", config=config)[0] == 0
    return source.tmp_path


def test_uninstall_without_a_terminal_asks_for_yes(sqlite_source: Source) -> None:
    _initialized(sqlite_source)
    code, _out, err = run(sqlite_source.tmp_path, "uninstall")
    assert code == 1
    assert_one_error(err, r"Error: uninstall asks for confirmation, and standard input .*")
    assert "--yes" in err
    assert run(sqlite_source.tmp_path, "status")[0] == 0  # nothing was removed


def test_tables_keep_whole_cells_when_not_on_a_terminal(sqlite_source: Source) -> None:
    """`runs` printed to a pipe: each run is one line with every cell whole (a table
    fitted to 80 columns wrapped the start time over two)."""
    _initialized(sqlite_source)
    code, out, _err = run(sqlite_source.tmp_path, "runs")
    assert code == 0
    row = next(line for line in out.splitlines() if " init " in line)
    assert re.search(r"init\s+│?\s*1\s+│?\s*succeeded\s+│?\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row)


def test_load_into_another_target_says_overview_follows_the_configured_one(
    sqlite_source: Source,
) -> None:
    target = sqlite_source.tmp_path / "configured.db"
    folder = _initialized(sqlite_source, f'[target]\nurl = "sqlite:///{target}"\n')
    assert run(folder, "export", "tables")[0] == 0
    code, _out, err = run(folder, "load", "--target", f"sqlite:///{folder / 'other.db'}")
    assert code == 0
    assert err.startswith("Note: overview, runs and the dashboard follow [target] url")
    assert "other.db" in err
    assert run(folder, "load")[2] == ""  # the configured target: nothing to say


def test_entity_discovery_takes_only_the_tables_table_export_selects(
    sqlite_source: Source,
) -> None:
    """A `*_tmp` table excluded from table export is no entity, and `--all` leaves it."""
    metadata = sa.MetaData()
    for name in ("orders", "orders_tmp"):
        sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True))
    sqlite_source.create(*metadata.tables.values())
    folder = sqlite_source.tmp_path
    config = f'[source]\nurl = "{sqlite_source.url}"\n[tables]\nexclude = ["*_tmp"]\n'
    assert run(folder, "init", config=config)[0] == 0
    code, out, err = run(folder, "entities", "list", "--json")
    assert code == 0, err
    assert [e["name"] for e in json.loads(out)] == ["ORDERS"]
    code, out, _err = run(folder, "entities", "enable", "--all")
    assert code == 0 and "ORDERS_TMP" not in out


def test_a_data_time_in_the_future_is_taken_as_the_capture_time(sqlite_source: Source) -> None:
    """A time column holding year 2999: the change is exported by the next run (it stayed
    pending until then, skipped by --until-caught-up), and no folder is named after 2999."""
    orders = sa.Table(
        "orders",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("placed", sa.DateTime),
    )
    sqlite_source.create(orders)
    config = sqlite_source.config("tables.time_columns.orders=placed")
    tidegate.init(config)
    tidegate.export_tables(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 1, "placed": datetime(2999, 1, 1)}])
        conn.execute(orders.insert(), [{"id": 2, "placed": datetime.now(UTC).replace(tzinfo=None)}])
    exported = tidegate.export_tables(config, until_caught_up=True)
    assert sum(result.rows for result in exported) == 2
    for result in exported:
        assert re.fullmatch(r"export_\d+_20\d\d_.*", result.name), result.name
    assert api.pending_changes(config) == {"orders": 0}


def test_a_mistyped_location_never_starts_a_second_chain(sqlite_source: Source) -> None:
    """The source remembers where its table exports go: another [output] location is
    refused in one line, until `--location-moved` says the folders were moved there."""
    folder = _initialized(sqlite_source)
    assert run(folder, "--set", "output.location=exports", "export", "tables")[0] == 0
    code, _out, err = run(folder, "--set", "output.location=exprots", "export", "tables")
    assert code == 1
    assert_one_error(err, r"Error: .*\[output\] location: exprots is not where this source.s .*")
    assert "--location-moved" in err
    assert not (folder / "exprots").exists() or not list((folder / "exprots").iterdir())
    (folder / "exports").rename(folder / "moved")
    moved = ["--set", "output.location=moved", "export", "tables"]
    assert run(folder, *moved, "--location-moved")[0] == 0
    assert run(folder, *moved)[0] == 0  # followed from now on
    assert run(folder, "--set", f"output.location={folder / 'moved'}", "export", "tables")[0] == 0
    assert run(folder, "--set", "output.location=exports", "export", "tables")[0] == 1


def test_entities_list_says_why_a_table_is_in_no_entity(sqlite_source: Source) -> None:
    """Each table outside every entity is named with its reason: a log table, one the
    table filters leave out, one without a key, a child's child."""
    metadata = sa.MetaData()
    sa.Table("acct", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "acct_per",
        metadata,
        sa.Column("id", sa.Integer, sa.ForeignKey("acct.id"), primary_key=True),
        sa.Column("per", sa.Integer, primary_key=True),
    )
    sa.Table(
        "acct_per_note",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("per", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.ForeignKeyConstraint(["id", "per"], ["acct_per.id", "acct_per.per"]),
    )
    sa.Table("audit_log", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("scratch_tmp", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("heap", metadata, sa.Column("v", sa.Integer))
    sqlite_source.create(*metadata.tables.values())
    folder = sqlite_source.tmp_path
    config = f'[source]\nurl = "{sqlite_source.url}"\n[tables]\nexclude = ["*_tmp"]\n'
    assert run(folder, "init", config=config)[0] == 0
    code, out, err = run(folder, "entities", "list")
    assert code == 0, err
    said = out[out.index("Tables in no entity:") :]
    lines = dict(line.strip().split(": ", 1) for line in said.splitlines()[1:])
    assert set(lines) == {"acct_per_note", "audit_log", "scratch_tmp", "heap"}, said
    assert "key and log tables" in lines["audit_log"]
    assert "[tables] include / exclude" in lines["scratch_tmp"]
    assert "no primary key" in lines["heap"]
    assert "acct_per, which is no entity's root" in lines["acct_per_note"]


def _on_a_terminal(folder: Path, *args: str) -> str:
    """What the CLI writes to a (pseudo-)terminal, progress bars included."""
    leader, follower = os.openpty()
    environment = {**os.environ, "COLUMNS": "160", "TERM": "xterm", "TIDEGATE_CONFIG": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "tidegate", *args],
        cwd=folder,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=environment,
    )
    os.close(follower)
    written = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        written += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0, written.decode(errors="replace")
    return written.decode(errors="replace")


def test_an_initial_export_shows_its_total_on_a_terminal(sqlite_source: Source) -> None:
    """The progress bar of `export initial` counts up to the entities the run writes, with
    a percentage (the total is counted before the first record)."""
    folder = _initialized(sqlite_source)
    with sqlite_source.engine().begin() as conn:
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < 5000) INSERT INTO t SELECT i FROM n"
        )
    assert run(folder, "entities", "enable", "T")[0] == 0
    shown = _on_a_terminal(folder, "export", "initial", "--records-per-file", "100")
    assert "5000/5000" in shown and "100%" in shown, shown


def test_a_table_export_never_shows_zero_rows_on_a_terminal(sqlite_source: Source) -> None:
    """Until its first rows are written, the bar of `export tables` says what it does,
    not "0 rows"."""
    folder = _initialized(sqlite_source)
    with sqlite_source.engine().begin() as conn:
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < 5000) INSERT INTO t SELECT i FROM n"
        )
    shown = _on_a_terminal(folder, "export", "tables")
    assert re.search(r"(?<![\d,])0 rows", shown) is None, shown
    assert "5000 row(s)" in shown, shown


def test_a_table_export_shows_its_total_on_a_terminal(source: Source) -> None:
    """The bar of `export tables` counts up to about what the folder will hold: the
    database's row estimate of a table exported whole (after ANALYZE on the servers: no
    scan), the captured changes of a table exported incrementally; with a percentage."""
    folder = _initialized(source, f'schema = "{source.schema}"\n' if source.schema else "")
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": i} for i in range(1, 5001)])
    analyze = {"postgresql": f'ANALYZE "{source.schema}".t', "mysql": "ANALYZE TABLE t"}.get(
        source.dialect
    )
    if analyze:
        with source.engine().begin() as conn:
            conn.exec_driver_sql(analyze)
    shown = _on_a_terminal(folder, "export", "tables", "--restart-from-beginning")
    about = re.search(r"of about ([\d,]+) rows", shown)
    assert about is not None, shown
    if source.dialect != "mysql":  # InnoDB's estimate is near 5,000, not exact
        assert about[1] == "5,000", shown
    assert "100%" in shown and "5000 row(s)" in shown, shown

    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": i} for i in range(5001, 5301)])
    shown = _on_a_terminal(folder, "export", "tables")
    assert "300 of about 300 rows" in shown and "100%" in shown, shown
