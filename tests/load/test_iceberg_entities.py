"""Entity runs into an Iceberg warehouse: each compared, value by value, with a DuckDB target
loaded from the same exports by the reference path (entityrun.py), after every load.

Covered: an initial run and ongoing runs of random changes from SQLite, PostgreSQL and
MariaDB sources; a new initial run removing the entities deleted while capture was off
(and an older ongoing run applied after it not bringing them back); a load killed between
two tables' commits of a step, run again; batches smaller than a run (several steps); the
warehouse's record of the runs applied, and load position."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.entities.test_initial import enabled_orders, fill, order_tables
from tests.entities.test_ongoing import change_randomly
from tests.load.duckdb_iceberg import duckdb_rows
from tests.load.helpers import normal, rows
from tests.load.test_iceberg import _exact, kill_when_paused
from tests.load.test_roundtrip import delete_while_capture_is_off
from tidegate import api
from tidegate.errors import TidegateError

pytest.importorskip("pyiceberg")
from tidegate.load import iceberg_entities
from tidegate.load.iceberg import IcebergTarget

TABLES = {
    "orders": ["region", "order_no"],
    "order_lines": ["region", "order_no", "line_no"],
    "order_notes": ["region", "order_no"],
}


def _urls(source: Source) -> tuple[str, str]:
    """(the Iceberg warehouse's URL, the DuckDB reference target's)."""
    return (
        f"iceberg:///{source.tmp_path / 'warehouse'}",
        f"duckdb:///{source.tmp_path / 'reference.duckdb'}",
    )


def _iceberg_rows(url: str, table: str) -> dict[Any, dict[str, Any]]:
    found = IcebergTarget(url).read(table).to_pylist()
    normalised = [{c: normal(v, loose=False) for c, v in row.items()} for row in found]
    return {tuple(str(row[k]) for k in TABLES[table]): row for row in normalised}


def _assert_duckdb_reads_alike(url: str) -> None:
    """DuckDB's iceberg extension reads every table as pyiceberg does, value and type."""
    target = IcebergTarget(url)
    locations = [target.catalog.load_table(("tidegate", t)).metadata_location for t in TABLES]
    for (table, key), by_duckdb in zip(TABLES.items(), duckdb_rows(*locations), strict=True):
        by_pyiceberg = target.read(table).to_pylist()

        def keyed(rows: list[dict[str, Any]], key: list[str] = key) -> dict[Any, list[Any]]:
            return {
                tuple(row[k] for k in key): [(c, _exact(v)) for c, v in row.items()] for row in rows
            }

        assert len(by_duckdb) == len(by_pyiceberg), table
        assert keyed(by_duckdb) == keyed(by_pyiceberg), table


def assert_iceberg_equals_reference(config: tidegate.Config, iceberg: str, reference: str) -> int:
    """Load the reference target too, and compare every entity table; the rows compared.
    (Each table read by pyiceberg, and by DuckDB, which must agree.)"""
    _assert_duckdb_reads_alike(iceberg)
    api.load(config, target_url=reference)
    engine = sa.create_engine(reference)
    compared = 0
    try:
        for table, key in TABLES.items():
            want = rows(engine, table, key, loose=False)
            got = _iceberg_rows(iceberg, table)
            assert got == want, table
            compared += len(want)
    finally:
        engine.dispose()
    return compared


@pytest.mark.parametrize("source", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_entity_runs_round_trip_into_iceberg(source: Source) -> None:
    iceberg, reference = _urls(source)
    config = enabled_orders(source, 30, f"target.url={iceberg}")
    api.export_initial(config, threads=2)
    assert api.load(config).runs == ["INIT_EXPORT_1"]
    assert assert_iceberg_equals_reference(config, iceberg, reference) >= 30
    for seed in (1, 2, 3):
        change_randomly(source, seed)
        api.export_ongoing(config, threads=2)
        assert api.load(config).runs
        assert_iceberg_equals_reference(config, iceberg, reference)
    # A new initial run is older than nothing held: applying it changes nothing.
    api.entities_reset(config, ["ORDERS"])
    api.export_initial(config, threads=1)
    assert api.load(config).runs == ["INIT_EXPORT_2"]
    assert_iceberg_equals_reference(config, iceberg, reference)
    # Nothing twice: each run is recorded once applied, as ranges of run numbers.
    assert api.load(config).runs == []
    applied = iceberg_entities.applied_runs(IcebergTarget(iceberg))
    assert applied == {"INIT_EXPORT": [[1, 2]], "INC_EXPORT": [[1, 3]]}
    position = api.load_position(config)
    assert position.pending_entity_runs == ()


def test_an_initial_run_removes_entities_deleted_while_capture_was_off(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As test_roundtrip's test of the same name, into Iceberg: loaded along, and into a
    new warehouse taking every run at once; with steps of two records, so that each run
    takes several."""
    monkeypatch.setattr(iceberg_entities, "BATCH_RECORDS", 2)
    source = sqlite_source
    iceberg, reference = _urls(source)
    config = delete_while_capture_is_off(source, iceberg)
    assert_iceberg_equals_reference(config, iceberg, reference)
    assert ("NEW", "1") not in _iceberg_rows(iceberg, "orders")

    fresh = f"iceberg:///{source.tmp_path / 'fresh'}"
    applied = api.load(config, target_url=fresh).runs  # initial runs first, then ongoing
    assert applied[:3] == ["INIT_EXPORT_1", "INIT_EXPORT_2", "INC_EXPORT_1"], applied
    for table in TABLES:
        assert _iceberg_rows(fresh, table) == _iceberg_rows(iceberg, table), table


LOADER = textwrap.dedent(r"""
    import sys, time
    from tidegate import api
    from tidegate.config import load_config
    from tidegate.load import iceberg_entities

    iceberg_entities.BATCH_RECORDS = 4
    original = iceberg_entities._replace_rows
    calls = []
    def replace_then_pause(state, records, stale, step):
        if step == 1 and not calls:  # the second step: its first table committed, then kill
            calls.append(step)
            tables = dict(state.tables)
            first = next(iter(tables))
            state.tables = {first: tables[first]}
            original(state, records, stale, step)
            print("PAUSED", flush=True)
            time.sleep(60)
        return original(state, records, stale, step)
    iceberg_entities._replace_rows = replace_then_pause
    api.load(load_config(sys.argv[1], environ={}))
""")


def test_a_load_killed_inside_a_step_resumes_and_applies_nothing_twice(
    sqlite_source: Source,
) -> None:
    source = sqlite_source
    iceberg, reference = _urls(source)
    config = enabled_orders(source, 12, f"target.url={iceberg}")
    api.export_initial(config)
    api.load(config)
    change_randomly(source, 4)
    api.export_ongoing(config)
    kill_when_paused(LOADER, source, iceberg)
    steps = {
        name: IcebergTarget(iceberg)
        .catalog.load_table(("tidegate", name))
        .properties.get(iceberg_entities.RUN_STEP)
        for name in (*TABLES, iceberg_entities.VERSIONS)
    }
    assert '"step": 1' in str(steps["orders"]) and '"step": 0' in str(steps["order_lines"])
    assert api.load_position(config).pending_entity_runs == ("INC_EXPORT_1",)

    # Run again, with the default step size: the steps are cut as the killed load cut them.
    assert api.load(config).runs == ["INC_EXPORT_1"]
    assert_iceberg_equals_reference(config, iceberg, reference)


@pytest.mark.parametrize("source", ["postgresql"], indirect=True)
def test_a_value_iceberg_cannot_hold_is_refused_before_the_step_writes(source: Source) -> None:
    """A line's date Iceberg cannot hold (PostgreSQL's infinity) refuses the run in one
    line naming its column, before any table of the step commits: no order is written
    without its lines."""
    iceberg, _ = _urls(source)
    source.create(*order_tables())
    fill(source, 10)
    with source.engine().begin() as conn:
        lines = f'"{source.schema}".order_lines'
        conn.exec_driver_sql(f"ALTER TABLE {lines} ADD COLUMN due date DEFAULT 'infinity'")
    config = source.config(f"target.url={iceberg}")
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    api.export_initial(config, threads=1)
    with pytest.raises(TidegateError, match=r"'order_lines', column 'due' \(DATE.*'infinity'"):
        api.load(config)
    target = IcebergTarget(iceberg)
    assert [target.read(table).num_rows for table in TABLES] == [0, 0, 0]
