"""Round trips: changes in every source, exported, loaded into every target, compared."""

from __future__ import annotations

import random

import pytest

import tidegate
from tests.conftest import Source
from tests.load.conftest import TargetDb, make_target
from tests.load.helpers import assert_target_equals_source
from tests.tables.helpers import sample_tables
from tests.tables.test_export import apply_operation
from tidegate import api

ENTITY_TABLES = ("orders", "order_lines", "order_notes")
KINDS = ["insert", "insert", "update", "delete", "move", "child", "child"]


def change(source: Source, rng: random.Random, count: int) -> None:
    parent, child = sample_tables()
    engine = source.engine()
    for _ in range(count):
        op = (rng.choice(KINDS), rng.randint(1, 15), rng.randint(0, 10**6))
        apply_operation(source, engine, op, parent, child)


def test_table_exports_load_into_every_target(source: Source, target: TargetDb) -> None:
    """Every pair of source and target: a snapshot, then three rounds of random inserts,
    updates, key moves and deletes, each exported and loaded; the target equals the
    source after every load, and a second load changes nothing."""
    source.create(*sample_tables())
    config = source.config(f"target.url={target.url}")
    tidegate.init(config)
    rng = random.Random(7)
    change(source, rng, 12)
    for _ in range(3):
        tidegate.export_tables(config, until_caught_up=True)
        result = api.load(config)
        assert result.tables
        assert_target_equals_source(source, target, "parent", "child line")
        change(source, rng, 10)
    assert not api.load(config).tables  # nothing new: nothing applied


@pytest.mark.parametrize(
    ("source_kind", "target_kind"), [("sqlite", "postgresql"), ("postgresql", "duckdb")]
)
def test_entity_exports_load(
    request: pytest.FixtureRequest, tmp_path: object, source_kind: str, target_kind: str
) -> None:
    from pathlib import Path

    from tests.conftest import _make_source
    from tests.entities.test_initial import enabled_orders
    from tests.entities.test_ongoing import change_randomly

    assert isinstance(tmp_path, Path)
    source: Source = next(_make_source(request, source_kind, tmp_path))
    target = make_target(request, target_kind, tmp_path)
    config = enabled_orders(source, 25, f"target.url={target.url}")
    api.export_initial(config, threads=2)
    api.load(config)
    assert_target_equals_source(source, target, *ENTITY_TABLES, trimmed=True)
    for seed in (1, 2):
        change_randomly(source, seed)
        api.export_ongoing(config, threads=2)
        result = api.load(config)
        assert result.runs
        assert_target_equals_source(source, target, *ENTITY_TABLES, trimmed=True)
    # A new initial export is older than nothing the target holds: applying it is harmless.
    api.entities_reset(config, ["ORDERS"])
    api.export_initial(config, threads=1)
    api.load(config)
    assert_target_equals_source(source, target, *ENTITY_TABLES, trimmed=True)
    target.dispose()


def delete_while_capture_is_off(source: Source, target_url: str) -> tidegate.Config:
    """Orders exported and loaded along into `target_url`; then, ongoing capture off, an
    order created (and exported by an ongoing run before) and another deleted, capture on
    again, the initial export reset and redone, an ongoing run, and a load. The config."""
    import sqlalchemy as sa

    from tests.entities.test_initial import fill, order_tables

    orders, lines, notes = order_tables()
    source.create(orders, lines, notes)
    fill(source, 6)
    config = source.config(f"target.url={target_url}")
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    api.export_initial(config)
    api.load(config)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"region": "NEW", "order_no": 1, "note": "brief"}])
    api.export_ongoing(config)
    api.load(config)

    def delete(conn: sa.Connection, region: str, number: int) -> None:
        for table in (lines, notes, orders):
            conn.execute(table.delete().where(table.c.region == region, table.c.order_no == number))

    api.entities_disable(config, ["ORDERS"], ongoing_only=True)
    with source.engine().begin() as conn:
        delete(conn, "NEW", 1)  # its DELETED record is never written: capture is off
        first = conn.execute(sa.select(orders.c.region, orders.c.order_no)).first()
        assert first is not None
        delete(conn, *first)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    api.entities_reset(config, ["ORDERS"])
    api.export_initial(config)
    api.export_ongoing(config)
    api.load(config)
    return config


def test_a_new_initial_export_removes_entities_deleted_while_capture_was_off(
    sqlite_source: Source, target: TargetDb
) -> None:
    """(delete_while_capture_is_off) The target that had loaded along holds neither order
    any more, and neither does a new target loading every run at once (initial runs first,
    so the older ongoing run comes after the new initial run and must not bring the order
    back). Both once stayed."""
    source = sqlite_source
    config = delete_while_capture_is_off(source, target.url)
    assert_target_equals_source(source, target, *ENTITY_TABLES, trimmed=True)

    fresh = source.tmp_path / "fresh.db"
    api.load(config, target_url=f"sqlite:///{fresh}")  # INIT_1, INIT_3, then INC_2
    assert_target_equals_source(
        source, TargetDb("sqlite", f"sqlite:///{fresh}"), *ENTITY_TABLES, trimmed=True
    )


def test_a_column_added_in_the_source_is_added_in_the_target(
    sqlite_source: Source, target: TargetDb
) -> None:
    """Schema evolution: the next export carries the new column; load adds it (older rows
    NULL) and fills it for the rows that changed."""
    source = sqlite_source
    source.create(*sample_tables())
    config = source.config(f"target.url={target.url}")
    tidegate.init(config)
    change(source, random.Random(5), 8)
    tidegate.export_tables(config)
    api.load(config)
    with source.engine().begin() as conn:
        conn.exec_driver_sql("ALTER TABLE parent ADD COLUMN extra INTEGER")
        conn.exec_driver_sql("UPDATE parent SET extra = id * 10")
    tidegate.init(config)  # capture picks up the new column
    tidegate.export_tables(config, until_caught_up=True)
    api.load(config)
    assert_target_equals_source(source, target, "parent", "child line")


def test_two_loads_at_once_apply_each_export_once(
    request: pytest.FixtureRequest, sqlite_source: Source, tmp_path: object
) -> None:
    """Two loads race into one PostgreSQL target: one applies the exports, the other stops
    at once with a clear error (or finds them applied); nothing is applied twice."""
    import threading
    from pathlib import Path

    from tidegate.errors import TargetError

    assert isinstance(tmp_path, Path)
    target = make_target(request, "postgresql", tmp_path)
    sqlite_source.create(*sample_tables())
    config = sqlite_source.config(f"target.url={target.url}")
    tidegate.init(config)
    change(sqlite_source, random.Random(4), 30)
    tidegate.export_tables(config, until_caught_up=True)
    errors: list[Exception] = []

    def load() -> None:
        try:
            api.load(config)
        except Exception as error:  # judged below: only the clash may fail a load
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(e, TargetError) and "another load" in str(e) for e in errors), errors
    api.load(config)
    assert_target_equals_source(sqlite_source, target, "parent", "child line")
    with target.engine().connect() as conn:
        applied = conn.exec_driver_sql("SELECT export FROM tidegate_applied").scalars().all()
    assert len(applied) == len(set(applied)) >= 1
    target.dispose()


def test_a_table_that_is_all_key_takes_a_key_sent_again(
    sqlite_source: Source, target: TargetDb
) -> None:
    """A row deleted and inserted again between two exports is sent as a row; in a table
    of key columns only, the target's upsert finds nothing to update. That is no missing
    record: the load goes through, and the target equals the source."""
    import sqlalchemy as sa

    tags = sa.Table(
        "tag",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(20), primary_key=True),
    )
    sqlite_source.create(tags)
    config = sqlite_source.config(f"target.url={target.url}")
    tidegate.init(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(tags.insert(), [{"id": k, "name": f"t{k}"} for k in range(1, 8)])
    tidegate.export_tables(config)
    api.load(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(tags.delete().where(tags.c.id <= 3))
        conn.execute(tags.insert(), [{"id": k, "name": f"t{k}"} for k in (1, 2, 3, 9)])
    tidegate.export_tables(config)
    assert api.load(config).tables
    assert_target_equals_source(sqlite_source, target, "tag")


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_a_load_lock_is_per_target_not_per_server(
    request: pytest.FixtureRequest, tmp_path: object, server: str
) -> None:
    """A load holding one target's lock does not stop a load into another database (or
    PostgreSQL schema) of the same server; a second load into the same target is refused.
    (The lock name was once the same for every target of a server.)"""
    from pathlib import Path

    from tidegate.errors import TargetError
    from tidegate.load.target import Target

    assert isinstance(tmp_path, Path)
    first, other = make_target(request, server, tmp_path), make_target(request, server, tmp_path)
    holder, same, elsewhere = Target(first.url), Target(first.url), Target(other.url)
    try:
        with holder.exclusive():
            with elsewhere.exclusive():
                pass  # another database of the server: not blocked
            with (
                pytest.raises(TargetError, match="another load into it is running"),
                same.exclusive(),
            ):
                pass
        with same.exclusive():
            pass  # released with the first load
    finally:
        for target in (holder, same, elsewhere):
            target.dispose()
