"""Loads into an Apache Iceberg warehouse (`iceberg:///<dir>`), read back with pyiceberg's
scan into Arrow (and by Polars and by DuckDB's iceberg extension, which must read the same)
and compared with the source value by value: round trips over several rounds of random
changes and deletes from every source, a load killed between two tables' commits and run
again, types Iceberg cannot hold refused before anything is written, columns added and
widened, and entity runs refused."""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import Source
from tests.load.conftest import TargetDb
from tests.load.duckdb_iceberg import duckdb_rows
from tests.load.helpers import assert_target_equals_source
from tests.tables.helpers import sample_tables, source_rows
from tests.tables.test_export import parent_values
from tests.test_cli import run
from tidegate import api
from tidegate.config import Config
from tidegate.errors import LoadError
from tidegate.web.metrics import ready

pytest.importorskip("pyiceberg")
polars = pytest.importorskip("polars")
from tidegate.load.iceberg import IcebergTarget  # noqa: E402  (after the skips)

os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")  # (no planner plugin here)


def _target(source: Source) -> str:
    return f"iceberg:///{source.tmp_path / 'warehouse'}"


def _initialized(source: Source) -> tuple[sa.Table, sa.Table, str, Config]:
    """The sample tables in the source, `init` run, and a config loading into a warehouse
    in the test's folder: (parent, child, the warehouse's URL, the config)."""
    parent, child = sample_tables()
    source.create(parent, child)
    url = _target(source)
    config = source.config(f"target.url={url}")
    api.init(config)
    return parent, child, url, config


def _iceberg_rows(url: str, *tables: sa.Table) -> list[dict[tuple[str, ...], dict[str, Any]]]:
    """Each table's rows as pyiceberg reads them, by key, checked to be what Polars and
    DuckDB read from the same metadata file, each with its own Parquet reader."""
    target = IcebergTarget(url)
    metadata = [target.catalog.load_table(("tidegate", t.name)).metadata_location for t in tables]
    by_duckdb = duckdb_rows(*metadata)  # one process for all the tables
    held = []
    for table, location, read_by_duckdb in zip(tables, metadata, by_duckdb, strict=True):
        rows = target.read(table.name).to_pylist()
        by_polars = polars.scan_iceberg(location).collect().to_dicts()
        assert sorted(by_polars, key=repr) == sorted(rows, key=repr), table.name
        _assert_read_alike("DuckDB", read_by_duckdb, rows, table)
        held.append(_by_key(rows, table))
    return held


def _by_key(rows: list[dict[str, Any]], table: sa.Table) -> dict[tuple[str, ...], dict[str, Any]]:
    keys = [c.name for c in table.primary_key.columns]
    return {tuple(str(row[k]) for k in keys): row for row in rows}


def _assert_read_alike(
    reader: str, got: list[dict[str, Any]], want: list[dict[str, Any]], table: sa.Table
) -> None:
    """Another reader's rows are pyiceberg's, exactly: as many rows, the same keys and
    columns, and each value the same, of the same type (see _exact)."""
    assert len(got) == len(want), f"{reader} read {len(got)} rows of {table.name}, not {len(want)}"
    got_by_key, want_by_key = _by_key(got, table), _by_key(want, table)
    assert set(got_by_key) == set(want_by_key), f"{reader} read other keys of {table.name}"
    for key, row in want_by_key.items():
        assert list(got_by_key[key]) == list(row), f"{reader}: {table.name}'s columns"
        for column, value in row.items():
            read = got_by_key[key][column]
            assert _exact(read) == _exact(value), (
                f"{table.name} {key} {column}: {reader} read {read!r}, pyiceberg {value!r}"
            )


def _exact(value: Any) -> tuple[Any, ...]:
    """A value with what `==` overlooks: its type (1 == 1.0 == True), a decimal's scale
    (1.0 == 1.00) and a date-time's offset from UTC (naive or not)."""
    if isinstance(value, Decimal):
        return Decimal, value, value.as_tuple().exponent
    if isinstance(value, dt.datetime):
        return dt.datetime, value, value.utcoffset()
    if isinstance(value, float) and math.isnan(value):
        return float, "NaN"  # NaN is not equal to itself
    return type(value), value


def _same(got: Any, want: Any) -> bool:
    """An Iceberg value and the source driver's, as the same value (SQLite's driver gives
    text for date-times, integers for booleans, floats for numerics)."""
    if want is None or got is None:
        return want is None and got is None
    if isinstance(got, bool):
        return got == bool(want)
    if isinstance(got, float):
        return got == want or (math.isnan(got) and math.isnan(want))
    if isinstance(got, Decimal):  # SQLite may hold a numeric as a REAL: the same float
        return float(got) == want if isinstance(want, float) else got == Decimal(str(want))
    if isinstance(got, dt.datetime):
        if isinstance(want, str):
            want = dt.datetime.fromisoformat(want)
        if got.tzinfo is not None:
            got = got.astimezone(dt.UTC).replace(tzinfo=None)
        if want.tzinfo is not None:
            want = want.astimezone(dt.UTC).replace(tzinfo=None)
        return bool(got == want)
    if isinstance(got, dt.date):
        return got == (dt.date.fromisoformat(want) if isinstance(want, str) else want)
    if isinstance(got, bytes):
        return got == bytes(want)
    return bool(got == want)


def assert_iceberg_equals_source(source: Source, url: str, *tables: sa.Table) -> None:
    for table, got in zip(tables, _iceberg_rows(url, *tables), strict=True):
        expected = source_rows(source, table)
        assert set(got) == set(expected), table.name
        for key, row in expected.items():
            for column, value in row.items():
                held = got[key][column]
                assert _same(held, value), f"{table.name} {key} {column}: {held!r} != {value!r}"


def _change(source: Source, rng: random.Random, parent: sa.Table, child: sa.Table) -> None:
    """A round of the application's writes: inserts, updates and deletes in both tables."""
    with source.engine().begin() as conn:
        held = [row[0] for row in conn.execute(sa.select(parent.c.id))]
        for key in rng.sample(held, min(len(held), 5)):
            conn.execute(parent.update().where(parent.c.id == key).values(parent_values(rng, key)))
        for key in rng.sample(held, min(len(held), 3)):
            conn.execute(child.delete().where(child.c.parent_id == key))
            conn.execute(parent.delete().where(parent.c.id == key))
        start = max(held, default=0) + 1
        fresh = range(start, start + rng.randint(1, 8))
        conn.execute(parent.insert(), [parent_values(rng, key) for key in fresh])
        conn.execute(
            child.insert(),
            [
                {"parent_id": key, "code": f"c{n}", "qty": n, "note": "x"}
                for key in fresh
                for n in (1, 2)
            ],
        )


@pytest.mark.parametrize("source", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_table_exports_round_trip_into_iceberg(source: Source) -> None:
    parent, child, url, config = _initialized(source)
    rng = random.Random(19)
    for round_number in range(4):
        _change(source, rng, parent, child)
        api.export_tables(config)
        loaded = api.load(config)
        assert len(loaded.tables) == 1, round_number
        assert_iceberg_equals_source(source, url, parent, child)
    # Nothing twice: a second load applies nothing, and the position is the last export's.
    assert api.load(config).tables == []
    position = api.load_position(config)
    assert position.pending_table_exports == () and position.applied == 1
    assert position.last_table_export == api.chain_status(config).last.name  # type: ignore[union-attr]
    # What `overview`, `runs` and `/readyz` read of it.
    assert api.overview(config).freshness.state == "fresh"
    loads = [run for run in api.list_runs(config) if run.job == "load"]
    assert [run.status for run in loads] == ["succeeded"] * 5  # kept beside the lock
    assert {run.job for run in api.list_runs(config)} == {"init", "tables", "load"}
    assert ready(config) == (True, {"source": "ok", "target": "ok"})


LOADER = textwrap.dedent(r"""
    import sys, time
    from tidegate import api
    from tidegate.config import load_config
    from tidegate.load import iceberg

    original = iceberg.IcebergTarget._commit
    committed = []
    def commit_then_pause(self, transaction):
        original(self, transaction)
        committed.append(transaction)
        if len(committed) == 1:
            print("PAUSED", flush=True)
            time.sleep(60)  # one table committed, the next not
    iceberg.IcebergTarget._commit = commit_then_pause
    api.load(load_config(sys.argv[1], environ={}))
""")


def kill_when_paused(script: str, source: Source, url: str) -> None:
    """Run `script` (a load that prints PAUSED at the moment to kill it) in a process of
    its own, with a config file loading the source's exports into `url`; SIGKILL it there."""
    config_file = source.tmp_path / "iceberg.toml"
    config_file.write_text(
        f'[source]\nurl = "{source.url}"\n'
        f'[output]\nlocation = "{source.tmp_path / "exports"}"\n'
        f'[target]\nurl = "{url}"\n'
    )
    loader = subprocess.Popen(
        [sys.executable, "-c", script, str(config_file)], stdout=subprocess.PIPE, text=True
    )
    assert loader.stdout is not None and loader.stdout.readline().strip() == "PAUSED"
    loader.kill()
    loader.wait()


def test_a_load_killed_between_two_tables_resumes_each_from_its_own_position(
    sqlite_source: Source,
) -> None:
    parent, child, url, config = _initialized(sqlite_source)
    rng = random.Random(7)
    _change(sqlite_source, rng, parent, child)
    api.export_tables(config)
    api.load(config)
    _change(sqlite_source, rng, parent, child)
    api.export_tables(config)

    kill_when_paused(LOADER, sqlite_source, url)
    # One table holds the second export, the other does not; the chain still says the first.
    positions = {
        name: IcebergTarget(url).catalog.load_table(("tidegate", name)).properties
        for name in ("parent", "child line")
    }
    assert sorted(p["tidegate.position"] for p in positions.values()) == ["1", "2"], positions
    assert api.load_position(config).pending_table_exports != ()

    loaded = api.load(config)  # run again: the committed table is skipped, not applied twice
    assert len(loaded.tables) == 1
    assert_iceberg_equals_source(sqlite_source, url, parent, child)
    for name in ("parent", "child line"):
        table = IcebergTarget(url).catalog.load_table(("tidegate", name))
        assert table.properties["tidegate.position"] == "2"


@pytest.mark.parametrize("source", ["postgresql"], indirect=True)
def test_a_type_iceberg_cannot_hold_is_refused_before_anything_is_written(
    source: Source,
) -> None:
    pg_source = source
    table = sa.Table(
        "spans",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("amount", sa.Numeric()),  # any precision: more than Iceberg's 38 digits
    )
    pg_source.create(table)
    url = _target(pg_source)
    config = pg_source.config(f"target.url={url}")
    api.init(config)
    with pg_source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "amount": Decimal("1e-60")}])
    api.export_tables(config)
    with pytest.raises(LoadError) as refused:
        api.load(config)
    assert "column 'amount'" in refused.value.message and "Iceberg" in refused.value.message
    assert api.load_position(config).applied == 0
    (failed,) = [run for run in api.list_runs(config) if run.job == "load"]
    assert failed.status == "failed" and "column 'amount'" in failed.error
    assert api.overview(config).freshness.state == "failing"
    assert not (pg_source.tmp_path / "warehouse" / "tidegate" / "spans").exists()


@pytest.mark.parametrize("source", ["postgresql"], indirect=True)
def test_a_value_refused_in_one_table_leaves_every_table_as_it_was(source: Source) -> None:
    """Two tables in one export, the second holding a time of day Iceberg cannot hold
    (24:00:00): the load is refused naming it, and the first table, staged before it, was
    not committed either."""
    first = sa.Table("a_first", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    second = sa.Table(
        "z_second",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.Time),
    )
    source.create(first, second)
    url = _target(source)
    config = source.config(f"target.url={url}")
    api.init(config)
    with source.engine().begin() as conn:
        conn.execute(first.insert(), [{"id": 1}])
        conn.exec_driver_sql(f"INSERT INTO \"{source.schema}\".z_second VALUES (1, '24:00:00')")
    api.export_tables(config)
    with pytest.raises(LoadError, match=r"column 'at'.*24:00:00"):
        api.load(config)
    target = IcebergTarget(url)
    assert target.read("a_first").num_rows == 0
    assert "tidegate.position" not in target.catalog.load_table(("tidegate", "a_first")).properties


def test_only_tables_then_entity_runs_through_the_cli(sqlite_source: Source) -> None:
    """`load --only tables` leaves the entity run pending, as into a SQL target; `load`
    then applies it (the same rows: the table holds the source's state either way)."""
    parent, child, url, config = _initialized(sqlite_source)
    _change(sqlite_source, random.Random(3), parent, child)
    api.export_tables(config)
    api.entities_enable(config, ["PARENT"])
    api.export_initial(config)
    options = sqlite_source.cli_options(f"target.url={url}")
    code, out, _err = run(sqlite_source.tmp_path, *options, "load", "--only", "tables")
    assert code == 0 and "loaded 1 table export(s)" in out
    assert api.load_position(config).pending_entity_runs == ("INIT_EXPORT_1",)
    assert_iceberg_equals_source(sqlite_source, url, parent, child)
    code, out, _err = run(sqlite_source.tmp_path, *options, "load")
    assert code == 0 and "INIT_EXPORT_1" not in api.load_position(config).pending_entity_runs
    # By the entity records' rules now (texts trimmed, empty values NULL).
    assert_target_equals_source(sqlite_source, TargetDb("iceberg", url), "parent", trimmed=True)


@pytest.mark.parametrize("source", ["postgresql"], indirect=True)
def test_columns_the_source_adds_or_widens_follow_in_iceberg(source: Source) -> None:
    table = sa.Table(
        "counter",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer),
    )
    source.create(table)
    url = _target(source)
    config = source.config(f"target.url={url}")
    api.init(config)
    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "n": 1}, {"id": 2, "n": 2}])
    api.export_tables(config)
    api.load(config)
    with source.engine().begin() as conn:
        conn.exec_driver_sql(f'ALTER TABLE "{source.schema}".counter ADD COLUMN note text')
        conn.exec_driver_sql(f'ALTER TABLE "{source.schema}".counter ALTER n TYPE bigint')
        conn.exec_driver_sql(
            f"UPDATE \"{source.schema}\".counter SET n = {2**40}, note = 'wide' WHERE id = 2"
        )
    api.export_tables(config)
    api.load(config)
    iceberg = IcebergTarget(url).catalog.load_table(("tidegate", "counter"))
    assert {f.name: str(f.field_type) for f in iceberg.schema().fields} == {
        "id": "int",
        "n": "long",
        "note": "string",
    }
    [held] = _iceberg_rows(url, table)  # Polars and DuckDB read the old files' rows alike
    rows = sorted(held.values(), key=lambda r: r["id"])
    assert rows == [{"id": 1, "n": 1, "note": None}, {"id": 2, "n": 2**40, "note": "wide"}]


def test_sqlalchemy_orm_is_whole_before_any_thread_starts() -> None:
    """pyiceberg's SQL catalog imports SQLAlchemy's ORM, which SQLAlchemy's core also
    imports lazily from any thread; two threads importing it at once left one with a
    half-made module (the type matrix's loads and exports, in threads, failed with
    "partially initialized module 'sqlalchemy.orm.exc'"). Importing tidegate's API loads
    it, before anything starts a thread."""
    probe = "import sys, tidegate.api; print('sqlalchemy.orm.exc' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


@pytest.mark.parametrize("source", ["postgresql"], indirect=True)
def test_an_export_is_one_snapshot_per_table_of_rolled_files_even_once_partitioned(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table export's rows go into files rolled at the table's target size and are
    appended in one snapshot (not one per batch); a column whose name Avro cannot take is
    written under pyiceberg's sanitized name and read back by id; a table a user has
    partitioned since is written through pyiceberg, split by partition."""
    import pyarrow.compute as pc
    from pyiceberg.transforms import IdentityTransform

    from tidegate.load import archive, iceberg

    table = sa.Table(
        "priced",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("unit price", sa.Numeric(10, 2)),
        sa.Column("note", sa.Text),
        sa.Column("region", sa.String(8)),
    )
    source.create(table)
    url = _target(source)
    config = source.config(f"target.url={url}")
    api.init(config)
    read = archive.ExportArchive.batches

    def small_batches(self: Any, name: str, columns: Any) -> Any:  # many from a small export
        for batch in read(self, name, columns):
            yield from (batch.slice(at, 100) for at in range(0, batch.num_rows, 100))

    monkeypatch.setattr(archive.ExportArchive, "batches", small_batches)
    monkeypatch.setattr(iceberg, "BATCH_ROWS", 100)

    def change(keys: range) -> None:
        values = [
            {"id": k, "unit price": Decimal(k) / 4, "note": f"n{k} {'x' * 50}", "region": r}
            for k in keys
            for r in [f"r{k % 3}"]
        ]
        with source.engine().begin() as conn:
            conn.execute(table.delete().where(table.c.id.in_(keys)))
            conn.execute(table.insert(), values)

    def appends(held: Any) -> list[Any]:
        return [s for s in held.snapshots() if s.summary.operation.value == "append"]

    change(range(1, 1001))
    api.export_tables(config)
    api.load(config)
    held = IcebergTarget(url).catalog.load_table(("tidegate", "priced"))
    assert held.schema().find_field(2).name == "unit price"
    [append] = appends(held)
    assert int(append.summary["added-records"]) == 1000
    assert int(append.summary["added-data-files"]) == 1  # 10 batches, one file
    with held.transaction() as transaction:  # files of about 2 batches each from now on
        transaction.set_properties({"write.target-file-size-bytes": "20000"})
    change(range(500, 1501))
    api.export_tables(config)
    api.load(config)
    held = IcebergTarget(url).catalog.load_table(("tidegate", "priced"))
    newest = appends(held)[-1]
    assert len(appends(held)) == 2 and int(newest.summary["added-records"]) == 1001
    assert 2 < int(newest.summary["added-data-files"]) < 11
    [rows] = _iceberg_rows(url, table)
    assert len(rows) == 1500 and rows[(str(1500),)]["unit price"] == Decimal("375.00")
    # Partitioned by a user: rows go to each partition's own files, as pyiceberg writes them.
    with held.update_spec() as spec:
        spec.add_field("region", IdentityTransform(), "region")
    change(range(1400, 1601))
    api.export_tables(config)
    api.load(config)
    held = IcebergTarget(url).catalog.load_table(("tidegate", "priced"))
    files = held.inspect.files()
    partitioned = files.filter(pc.field("spec_id") == held.spec().spec_id)
    assert partitioned.num_rows >= 3 and sum(partitioned.column("record_count").to_pylist()) == 201
    [rows] = _iceberg_rows(url, table)
    assert len(rows) == 1600 and rows[(str(1600),)]["note"].startswith("n1600 ")
