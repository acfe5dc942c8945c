"""A captured table whose shape changes mid-stream (SPEC, "Schema changes in the source"):
the next export re-installs its capture and exports it whole, the loader replaces the
target's table, and the stream goes on incrementally; a dropped table ends its stream.

Each case runs on every source into every target; the target must equal the source after
the change and after the writes that follow it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.load.conftest import TargetDb
from tests.load.helpers import assert_target_equals_source
from tests.load.test_roundtrip import ENTITY_TABLES
from tidegate import api
from tidegate.errors import LoadError
from tidegate.formats import manifest as manifest_format
from tidegate.formats.manifest import ShapeChange
from tidegate.formats.naming import ExportName


def _orders() -> sa.Table:
    return sa.Table(
        "orders",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.String(20)),
    )


def _ddl(source: Source, *statements: str) -> None:
    name = f'"{source.schema}".orders' if source.schema else "orders"
    if source.dialect == "mysql":
        name = "orders"
    with source.engine().begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement.format(orders=name))


def _export_and_load(source: Source, target: TargetDb) -> None:
    config = source.config(f"target.url={target.url}")
    tidegate.export_tables(config, until_caught_up=True)
    tidegate.load(config)


CHANGES = {
    "rename the key column, add a column with a default": [
        "ALTER TABLE {orders} RENAME COLUMN id TO order_id",
        "ALTER TABLE {orders} ADD COLUMN qty INTEGER NOT NULL DEFAULT 7",
    ],
    "widen a column": None,  # per dialect, below
}
WIDEN = {
    "postgresql": "ALTER TABLE {orders} ALTER COLUMN note TYPE varchar(200)",
    "mysql": "ALTER TABLE {orders} MODIFY note varchar(200)",
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_table_is_replaced_and_the_stream_goes_on(
    source: Source, target: TargetDb, change: str
) -> None:
    orders = _orders()
    source.create(orders)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 1, "note": "a"}, {"id": 2, "note": "b"}])
    tidegate.init(source.config())
    _export_and_load(source, target)

    statements = CHANGES[change]
    if statements is None:
        if source.dialect not in WIDEN:
            pytest.skip("SQLite has no column types to widen")
        statements = [WIDEN[source.dialect]]
    _ddl(source, *statements)
    key = "order_id" if "RENAME" in statements[0] else "id"
    note = "c" * (150 if change == "widen a column" else 5)
    _export_and_load(source, target)  # the first export re-installs capture
    _ddl(
        source,
        "INSERT INTO {orders} (" + key + ", note) VALUES (3, '" + note + "')",
        "UPDATE {orders} SET note = 'x' WHERE " + key + " = 1",
        "DELETE FROM {orders} WHERE " + key + " = 2",
    )
    _export_and_load(source, target)
    assert assert_target_equals_source(source, target, "orders") == 2


def test_a_dropped_table_ends_its_stream(source: Source, target: TargetDb) -> None:
    orders = _orders()
    kept = sa.Table(
        "kept", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)
    )
    source.create(orders, kept)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 1, "note": "a"}])
    tidegate.init(source.config())
    _export_and_load(source, target)
    _ddl(source, "DROP TABLE {orders}")
    with source.engine().begin() as conn:
        conn.execute(kept.insert(), [{"id": 5}])
    _export_and_load(source, target)
    assert assert_target_equals_source(source, target, "kept") == 1
    with target.engine().connect() as conn:  # the target keeps the last rows it had
        assert conn.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 1


@pytest.mark.parametrize("target", ["postgresql", "mysql"], indirect=True)
def test_a_value_the_target_table_refuses_is_named_never_a_concurrent_load(
    sqlite_source: Source, target: TargetDb
) -> None:
    """A NOT NULL the target's table holds (made there by hand) and a NULL from the
    source: one line naming the export, table and column, no SQL; never "another load"."""
    orders = _orders()
    sqlite_source.create(orders)
    with sqlite_source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 1, "note": "a"}])
    tidegate.init(sqlite_source.config())
    _export_and_load(sqlite_source, target)
    with target.engine().begin() as conn:
        alter = {
            "postgresql": "ALTER TABLE orders ALTER COLUMN note SET NOT NULL",
            "mysql": "ALTER TABLE orders MODIFY note varchar(20) NOT NULL",
        }
        conn.exec_driver_sql(alter[target.dialect])
    with sqlite_source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 2, "note": None}])
    config = sqlite_source.config(f"target.url={target.url}")
    tidegate.export_tables(config, until_caught_up=True)
    with pytest.raises(LoadError) as refused:
        tidegate.load(config)
    message = str(refused.value)
    assert re.match(
        r"export_2_\S+/export_2_\S+\.zip/orders\.csv: table 'orders', column 'note'", message
    ), message
    assert "\n" not in message and "another load" not in message and "INSERT" not in message


@pytest.mark.parametrize("source", ["postgresql"], indirect=True)
def test_a_truncate_is_captured_and_empties_the_target(source: Source, target: TargetDb) -> None:
    """TRUNCATE fires no row trigger: its statement trigger records a change "T", and the
    next export writes the table whole (rows written after it included)."""
    orders = _orders()
    source.create(orders)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": i, "note": "a"} for i in range(1, 6)])
    tidegate.init(source.config())
    _export_and_load(source, target)
    _ddl(source, "TRUNCATE {orders}", "INSERT INTO {orders} VALUES (9, 'after')")
    config = source.config(f"target.url={target.url}")
    (result,) = tidegate.export_tables(config, until_caught_up=True)
    assert [(t.name, t.whole, t.rows) for t in result.tables] == [("orders", True, 1)]
    tidegate.load(config)
    assert assert_target_equals_source(source, target, "orders") == 1
    _ddl(source, "UPDATE {orders} SET note = 'later'")  # the stream goes on incrementally
    _export_and_load(source, target)
    assert assert_target_equals_source(source, target, "orders") == 1


@pytest.mark.parametrize("source", ["postgresql"], indirect=True)
def test_a_partitioned_table_is_exported_once_under_its_own_name(
    source: Source, target: TargetDb
) -> None:
    """Its partitions are not tables of their own (they were, and the target held every
    row twice); a partition created later is followed, and one detached, or attached with
    rows already in it (rows no trigger saw move), has the table exported whole."""
    schema = f'"{source.schema}".' if source.schema else ""

    def run_sql(*statements: str) -> None:
        with source.engine().begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement.format(s=schema))

    run_sql(
        "CREATE TABLE {s}measure (id int, region text, v int, PRIMARY KEY (id, region)) "
        "PARTITION BY LIST (region)",
        "CREATE TABLE {s}measure_eu PARTITION OF {s}measure FOR VALUES IN ('eu')",
        "CREATE TABLE {s}measure_us PARTITION OF {s}measure FOR VALUES IN ('us')",
        "INSERT INTO {s}measure VALUES (1, 'eu', 10), (2, 'us', 20), (3, 'eu', 30)",
    )
    report = tidegate.init(source.config())
    assert report.installed == ("measure",)
    _export_and_load(source, target)
    assert assert_target_equals_source(source, target, "measure") == 3
    run_sql(
        "CREATE TABLE {s}measure_asia PARTITION OF {s}measure FOR VALUES IN ('asia')",
        "INSERT INTO {s}measure VALUES (4, 'asia', 40)",
        "UPDATE {s}measure SET v = v + 1 WHERE id IN (1, 4)",
        "DELETE FROM {s}measure WHERE id = 2",
    )
    _export_and_load(source, target)
    assert assert_target_equals_source(source, target, "measure") == 3
    with target.engine().connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert not {"measure_eu", "measure_us", "measure_asia"} & names
    run_sql(
        "ALTER TABLE {s}measure DETACH PARTITION {s}measure_eu",
        "CREATE TABLE {s}measure_jp (id int, region text, v int, PRIMARY KEY (id, region))",
        "INSERT INTO {s}measure_jp VALUES (7, 'jp', 70), (8, 'jp', 80)",
        "ALTER TABLE {s}measure ATTACH PARTITION {s}measure_jp FOR VALUES IN ('jp')",
    )
    _export_and_load(source, target)
    assert _newest_manifest(source).shape_changes == (ShapeChange("measure", "whole"),)
    assert assert_target_equals_source(source, target, "measure") == 3  # asia and two jp


ENTITY_DDL = {
    "add a column with a default": "ALTER TABLE {orders} ADD COLUMN qty INTEGER DEFAULT 7",
}


def _orders_exported_initially(source: Source, target: TargetDb, rows: int) -> tidegate.Config:
    """`orders` with `rows` rows, the entity ORDERS enabled with ongoing capture and its
    initial export made: the config, loading into `target`."""
    orders = _orders()
    source.create(orders)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": i, "note": f"n{i}"} for i in range(1, rows + 1)])
    config = source.config(f"target.url={target.url}")
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    api.export_initial(config, ["ORDERS"])
    return config


def test_an_entity_whose_tables_change_is_exported_again_whole(
    source: Source, target: TargetDb
) -> None:
    """A column added with a default to an entity's root: every entity is queued and
    exported again, and the target's rows all get the new column's values."""
    config = _orders_exported_initially(source, target, 5)
    api.export_ongoing(config)
    tidegate.load(config)
    assert assert_target_equals_source(source, target, "orders", trimmed=True) == 5

    _ddl(source, ENTITY_DDL["add a column with a default"])
    (result,) = api.export_ongoing(config)
    assert result.reshaped == ["ORDERS"] and result.records == 5
    tidegate.load(config)
    assert assert_target_equals_source(source, target, "orders", trimmed=True) == 5
    _ddl(source, "UPDATE {orders} SET qty = 8 WHERE id = 2")
    (result,) = api.export_ongoing(config)
    assert result.reshaped == [] and result.records == 1
    tidegate.load(config)
    assert assert_target_equals_source(source, target, "orders", trimmed=True) == 5


@pytest.mark.parametrize("target", ["sqlite", "iceberg"], indirect=True)
def test_a_column_added_before_the_first_ongoing_run_reaches_every_row(
    source: Source, target: TargetDb
) -> None:
    """The initial export records the entity's shape: a column added before any ongoing
    run has recorded one is a change to it, and every entity is exported again. (The first
    ongoing run used to take the new shape as its baseline, and the rows the initial export
    had written never got the column.)"""
    config = _orders_exported_initially(source, target, 3)
    _ddl(source, ENTITY_DDL["add a column with a default"])
    (result,) = api.export_ongoing(config)
    assert result.reshaped == ["ORDERS"] and result.records == 3
    tidegate.load(config)
    assert assert_target_equals_source(source, target, "orders", trimmed=True) == 3


def _multiset(engine: sa.Engine, table: str, schema: str = "") -> list[tuple[str, ...]]:
    prep = engine.dialect.identifier_preparer
    name = f"{prep.quote(schema)}.{prep.quote(table)}" if schema else prep.quote(table)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT * FROM {name}").all()
    return sorted(tuple(str(value) for value in row) for row in rows)


def test_a_table_without_a_key_arrives_whole_with_its_equal_rows(
    source: Source, target: TargetDb
) -> None:
    """No key says which row a change was: each export after a change holds all of it,
    and the target holds the same rows as many times as the source does."""
    log = sa.Table("log", sa.MetaData(), sa.Column("a", sa.Integer), sa.Column("b", sa.Text))
    source.create(log)
    with source.engine().begin() as conn:
        conn.execute(log.insert(), [{"a": 1, "b": "x"}, {"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    report = tidegate.init(source.config())
    assert report.installed == ("log",) and report.keyless == ("log",)
    _export_and_load(source, target)
    one_of_the_equal_rows = {
        "postgresql": "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t} WHERE a = 1 LIMIT 1)",
        "mysql": "DELETE FROM {t} WHERE a = 1 LIMIT 1",
        "sqlite": "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE a = 1 LIMIT 1)",
    }[source.dialect]
    name = f'"{source.schema}".log' if source.schema else "log"
    with source.engine().begin() as conn:
        conn.exec_driver_sql(one_of_the_equal_rows.format(t=name))
        conn.exec_driver_sql(f"INSERT INTO {name} VALUES (3, 'z'), (3, 'z')")
        conn.exec_driver_sql(f"UPDATE {name} SET b = 'w' WHERE a = 2")
    config = source.config(f"target.url={target.url}")
    (result,) = tidegate.export_tables(config, until_caught_up=True)
    assert [(t.name, t.whole, t.rows) for t in result.tables] == [("log", True, 4)]
    tidegate.load(config)
    want = _multiset(source.engine(), "log", source.schema)
    assert want == [("1", "x"), ("2", "w"), ("3", "z"), ("3", "z")]
    assert _multiset(target.engine(), "log") == want


@pytest.mark.parametrize("source", ["mysql", "postgresql"], indirect=True)
def test_two_jobs_starting_at_once_never_deadlock(source: Source) -> None:
    """Both record their run's start, and their first runs the shapes of their tables; at
    MariaDB's REPEATABLE READ an UPDATE that finds no row takes a gap lock, and two jobs
    starting together deadlocked (found by the state machine; about one pair of runs in
    ten). Now the lock's session writes at READ COMMITTED."""
    orders = _orders()
    source.create(orders)
    for round_ in range(12):  # each round a fresh install: both kinds' first runs
        config = source.config(f"output.location={source.tmp_path / f'exports{round_}'}")
        tidegate.uninstall(config)
        tidegate.init(config)
        api.entities_enable(config, ["ORDERS"], ongoing=True)
        with source.engine().begin() as conn:
            conn.execute(orders.insert(), [{"id": round_, "note": "n"}])
        api.export_initial(config, ["ORDERS"])
        with source.engine().begin() as conn:
            conn.execute(orders.update().values(note="changed"))
        assert _at_once(config, api.export_ongoing, tidegate.export_tables) == []


def _at_once(config: tidegate.Config, *exports: Callable[[tidegate.Config], object]) -> list[str]:
    """Run the exports in threads at the same moment; the errors they raised."""
    errors: list[str] = []

    def run(export: Callable[[tidegate.Config], object]) -> None:
        try:
            export(config)
        except Exception as error:
            errors.append(str(error))

    threads = [threading.Thread(target=run, args=(export,)) for export in exports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def _newest_manifest(source: Source) -> manifest_format.Manifest:
    exports = source.tmp_path / "exports"
    newest = max(exports.glob("export_*"), key=lambda p: ExportName.parse(p.name))
    name = ExportName.parse(newest.name)
    return manifest_format.parse((newest / name.manifest_name).read_bytes(), newest.name)


# Each change in the source, the outcome the manifest reports for it, and the row written
# after it (its note long enough to need a widened column where one was widened).
OUTCOMES: dict[str, tuple[dict[str, str], str, str]] = {
    "add a column without a default": (
        {"*": "ALTER TABLE {orders} ADD COLUMN extra INTEGER"},
        "migrated",
        "c",
    ),
    "add a column with a default": (
        {"*": "ALTER TABLE {orders} ADD COLUMN extra INTEGER DEFAULT 7"},
        "whole",
        "c",
    ),
    "widen a text column": (
        {
            "postgresql": "ALTER TABLE {orders} ALTER COLUMN note TYPE varchar(200)",
            "mysql": "ALTER TABLE {orders} MODIFY note varchar(200)",
        },
        "migrated",
        "c" * 150,
    ),
    "widen the key": (
        {
            "postgresql": "ALTER TABLE {orders} ALTER COLUMN id TYPE bigint",
            "mysql": "ALTER TABLE {orders} MODIFY id bigint",
        },
        "migrated",
        "c",
    ),
    "drop a NOT NULL": (
        {
            "postgresql": "ALTER TABLE {orders} ALTER COLUMN code DROP NOT NULL",
            "mysql": "ALTER TABLE {orders} MODIFY code varchar(10) NULL",
        },
        "migrated",
        "c",
    ),
    "change a text column's length to pad": (
        {
            "postgresql": "ALTER TABLE {orders} ALTER COLUMN code TYPE char(12)",
            "mysql": "ALTER TABLE {orders} MODIFY code char(12) NOT NULL",
        },
        "whole",
        "c",
    ),
    "drop a column": ({"*": "ALTER TABLE {orders} DROP COLUMN note"}, "whole", ""),
    # Keyless from now on: exported whole after each change.
    "drop the key": (
        {
            "postgresql": "ALTER TABLE {orders} DROP CONSTRAINT orders_pkey",
            "mysql": "ALTER TABLE {orders} DROP PRIMARY KEY",
        },
        "whole",
        "c",
    ),
    # A row with the same id follows: the old key would take one for the other.
    "change the key": (
        {
            "postgresql": "ALTER TABLE {orders} DROP CONSTRAINT orders_pkey, "
            "ADD PRIMARY KEY (id, code)",
            "mysql": "ALTER TABLE {orders} DROP PRIMARY KEY, ADD PRIMARY KEY (id, code)",
        },
        "whole",
        "c",
    ),
}


@pytest.mark.parametrize("change", list(OUTCOMES))
def test_each_change_has_its_outcome_in_the_manifest_and_the_target(
    source: Source, target: TargetDb, change: str
) -> None:
    """A change whose rows still merge row by row is migrated (the export is not whole,
    the loader widens the target's table or adds the column); any other is exported
    whole; either way the manifest names the table and the outcome, and the target equals
    the source after rows written in the new shape."""
    statements, outcome, note = OUTCOMES[change]
    statement = statements.get(source.dialect, statements.get("*"))
    if statement is None:
        pytest.skip(f"{source.dialect} cannot alter a column in place")
    orders = sa.Table(
        "orders",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.String(20)),
        sa.Column("code", sa.String(10), nullable=False),
    )
    source.create(orders)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 1, "note": "a", "code": "x"}])
    tidegate.init(source.config())
    _export_and_load(source, target)

    _ddl(source, statement)
    columns = "id, code" + (", note" if note else "")
    values = {"widen the key": "3000000000", "change the key": "1"}.get(change, "3")
    values += ", NULL" if change == "drop a NOT NULL" else ", 'y'"
    values += f", '{note}'" if note else ""
    _ddl(source, "INSERT INTO {orders} (" + columns + ") VALUES (" + values + ")")
    _export_and_load(source, target)

    manifest = _newest_manifest(source)
    assert manifest.shape_changes == (ShapeChange("orders", outcome),)
    entry = next(t for t in manifest.tables if t.name == "orders")
    assert entry.whole == (outcome == "whole")
    assert entry.rows == (2 if outcome == "whole" else 1)
    key = ("id",) if change == "drop the key" else ()
    assert assert_target_equals_source(source, target, "orders", key=key) == 2
    # Reported once: the export after it says nothing of it.
    _ddl(source, "DELETE FROM {orders} WHERE code = 'x'")
    _export_and_load(source, target)
    assert _newest_manifest(source).shape_changes == ()
    assert assert_target_equals_source(source, target, "orders", key=key) == 1


def test_a_dropped_table_is_reported_ended(source: Source, target: TargetDb) -> None:
    orders = _orders()
    kept = sa.Table(
        "kept", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)
    )
    source.create(orders, kept)
    tidegate.init(source.config())
    _export_and_load(source, target)
    _ddl(source, "DROP TABLE {orders}")
    with source.engine().begin() as conn:
        conn.execute(kept.insert(), [{"id": 5}])
    _export_and_load(source, target)
    assert _newest_manifest(source).shape_changes == (ShapeChange("orders", "ended"),)


def test_a_renamed_table_ends_its_stream_and_its_new_name_begins_one(
    source: Source, target: TargetDb
) -> None:
    """A table renamed while capture is on: the next export reports the old name ended and
    warns of the new one, `init` captures it, and the export after writes it whole; the
    target keeps the old table's last rows and gets the new one equal to the source."""
    orders = _orders()
    source.create(orders)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 1, "note": "a"}, {"id": 2, "note": "b"}])
    config = source.config(f"target.url={target.url}")
    tidegate.init(config)
    _export_and_load(source, target)
    _ddl(source, "ALTER TABLE {orders} RENAME TO orders_v2")
    renamed = sa.Table("orders_v2", sa.MetaData(), schema=source.schema or None)
    with source.engine().begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE {_qualified(source, 'orders_v2')} SET note = 'changed' WHERE id = 1"
        )
    tidegate.export_tables(config, until_caught_up=True)
    assert _newest_manifest(source).shape_changes == (ShapeChange("orders", "ended"),)
    assert api.uncaptured_tables(config) == ["orders_v2"]
    assert tidegate.init(config).installed == ("orders_v2",)
    _export_and_load(source, target)
    entry = next(t for t in _newest_manifest(source).tables if t.name == "orders_v2")
    assert entry.whole and entry.rows == 2
    assert assert_target_equals_source(source, target, renamed.name) == 2
    with target.engine().connect() as conn:  # the old name keeps its last rows
        notes = conn.execute(sa.text("SELECT note FROM orders ORDER BY id")).scalars().all()
    assert notes == ["a", "b"]


def _qualified(source: Source, table: str) -> str:
    return f'"{source.schema}".{table}' if source.schema else table


@pytest.mark.parametrize("target", ["postgresql", "mysql", "duckdb", "sqlite"], indirect=True)
def test_an_entity_table_widened_in_the_source_is_widened_in_the_target(
    request: pytest.FixtureRequest, tmp_path: Path, target: TargetDb
) -> None:
    """A child table's text column lengthened: the ongoing run writes every entity again,
    and the loader widens the target's column so that the longer value fits."""
    from tests.conftest import _make_source
    from tests.entities.test_initial import enabled_orders

    source: Source = next(_make_source(request, "postgresql", tmp_path))
    config = enabled_orders(source, 3, f"target.url={target.url}")
    api.export_initial(config)
    api.load(config)
    lines = f'"{source.schema}".order_lines'
    with source.engine().begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {lines} ALTER COLUMN sku TYPE varchar(300)")
        first = conn.exec_driver_sql(f"SELECT region, order_no FROM {lines} LIMIT 1").one()
        conn.exec_driver_sql(
            f"UPDATE {lines} SET sku = repeat('s', 250) WHERE region = %s AND order_no = %s",
            tuple(first),
        )
    api.export_ongoing(config)
    api.load(config)
    assert_target_equals_source(source, target, *ENTITY_TABLES, trimmed=True)


@pytest.mark.parametrize("source", ["postgresql", "mysql"], indirect=True)
def test_a_key_changed_during_an_export_is_written_whole(
    source: Source, target: TargetDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DBA changes a table's key after the run compared shapes and before it read the
    table: the export writes that table whole (the loader could never merge its rows into
    the old key, and would stop at that export for ever), and the next export reports the
    change and writes it whole again; the target equals the source throughout."""
    from tidegate.tables import drift

    orders = _orders()
    source.create(orders)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 1, "note": "a"}])
    config = source.config(f"target.url={target.url}")
    tidegate.init(config)
    _export_and_load(source, target)
    change_key = {
        "postgresql": "ALTER TABLE {orders} DROP CONSTRAINT orders_pkey, "
        "ADD PRIMARY KEY (id, note)",
        "mysql": "ALTER TABLE {orders} DROP PRIMARY KEY, ADD PRIMARY KEY (id, note)",
    }
    follow = drift.follow

    def follow_then_alter(*args: object) -> drift.Drift:
        found = follow(*args)  # type: ignore[arg-type]
        _ddl(source, change_key[source.dialect])
        return found

    _ddl(source, "INSERT INTO {orders} (id, note) VALUES (2, 'b')")
    monkeypatch.setattr(drift, "follow", follow_then_alter)
    tidegate.export_tables(config)
    monkeypatch.undo()
    during = _newest_manifest(source)
    assert during.shape_changes == ()
    assert next(t for t in during.tables if t.name == "orders").whole
    tidegate.load(config)
    _ddl(source, "INSERT INTO {orders} (id, note) VALUES (1, 'same id')")
    _export_and_load(source, target)
    assert _newest_manifest(source).shape_changes == (ShapeChange("orders", "whole"),)
    assert assert_target_equals_source(source, target, "orders") == 3


def test_a_column_added_to_a_table_without_changes_reaches_the_target(
    source: Source, target: TargetDb
) -> None:
    """The export that reports a migration holds no row of the table: the loader still
    adds the column, so that the target has the source's columns."""
    orders = _orders()
    source.create(orders)
    with source.engine().begin() as conn:
        conn.execute(orders.insert(), [{"id": 1, "note": "a"}])
    tidegate.init(source.config())
    _export_and_load(source, target)
    _ddl(source, "ALTER TABLE {orders} ADD COLUMN extra INTEGER")
    _export_and_load(source, target)
    manifest = _newest_manifest(source)
    assert manifest.shape_changes == (ShapeChange("orders", "migrated"),)
    assert not manifest.tables
    assert assert_target_equals_source(source, target, "orders") == 1
