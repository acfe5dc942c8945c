"""The statements an entity load runs find their rows through an index, never by scanning
a table: the version lookup seeks (entity, key_sha1), and the delete of an entity's rows
seeks its table's key (a lookup that used the index on `entity` alone made loads
quadratic; SQLite scans a whole table for a row value `IN (VALUES …)`). So an ongoing
run's cost follows its records, not the size of the tables it changes. Checked with the
database's own plan of every such statement a real ongoing load runs, asked on the load's
own connection as it runs them: per batch on SQLite (record by record), and the
set-based joins of the run's staged records on PostgreSQL (`tidegate_records`, the
stage, is read whole: it holds the run)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import Source
from tests.entities.test_initial import enabled_orders
from tests.load.conftest import TargetDb
from tidegate import api
from tidegate.load import target as target_module


def _planned(dialect: str, engine: sa.Engine) -> list[tuple[str, str]]:
    """(statement, plan) of every lookup and delete the load runs, from now on."""
    plans: list[tuple[str, str]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def explain(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        looked_up = "FROM tidegate_entity_version" in statement and "SELECT" in statement
        any_held = "LIMIT" in statement  # whether the target holds a version of an entity
        if many or any_held or not (statement.startswith("DELETE") or looked_up):
            return
        raw = cursor.connection.cursor()
        if dialect == "postgresql":
            raw.execute(f"EXPLAIN {statement}", parameters)
        else:
            raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        plans.append((statement, "\n".join(str(row[-1]) for row in raw.fetchall())))

    return plans


def _many_versions(target: TargetDb) -> None:
    """Versions and rows of many more ORDERS keys, with statistics: the planner then weighs
    a lookup that uses the index on `entity` alone (every version of ORDERS read), or a
    scan of a whole table, as what it is."""
    with target.engine().begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO tidegate_entity_version (entity, key_sha1, stamp) "
            "SELECT 'ORDERS', md5(i::text), '0' FROM generate_series(1, 20000) i"
        )
        conn.exec_driver_sql(
            "INSERT INTO orders (region, order_no) SELECT 'ZZ', i FROM generate_series(1, 20000) i"
        )
        conn.exec_driver_sql(
            "INSERT INTO order_lines (region, order_no, line_no) "
            "SELECT 'ZZ', i, 1 FROM generate_series(1, 20000) i"
        )
        conn.exec_driver_sql(
            "INSERT INTO order_notes (region, order_no, kind) "
            "SELECT 'ZZ', i, 'k' FROM generate_series(1, 20000) i"
        )
        for table in ("tidegate_entity_version", "orders", "order_lines", "order_notes"):
            conn.exec_driver_sql(f"ANALYZE {table}")


@pytest.mark.parametrize("target", ["postgresql", "sqlite"], indirect=True)
def test_every_lookup_and_delete_of_a_load_seeks_an_index(
    sqlite_source: Source, target: TargetDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = enabled_orders(sqlite_source, 30, f"target.url={target.url}")
    api.export_initial(config)
    api.load(config)
    with sqlite_source.engine().begin() as conn:
        conn.exec_driver_sql("UPDATE orders SET note = 'changed'")
        conn.exec_driver_sql("UPDATE order_lines SET sku = 'other'")
    api.export_ongoing(config)

    if target.dialect == "postgresql":
        _many_versions(target)
    plans_of: list[list[tuple[str, str]]] = []
    make_engine = target_module.Target.__init__

    def make_and_listen(self: target_module.Target, url: str) -> None:
        make_engine(self, url)  # the load's engine: listened to from its first statement
        plans_of.append(_planned(target.dialect, self.engine))

    monkeypatch.setattr(target_module.Target, "__init__", make_and_listen)
    api.load(config)
    found = [plan for listened in plans_of for plan in listened]
    deletes = [p for p in found if p[0].startswith("DELETE FROM order")]
    lookups = [p for p in found if "tidegate_entity_version" in p[0] and p not in deletes]
    assert deletes and lookups, "the load ran no delete or no lookup"
    if target.dialect == "postgresql":  # the run was applied set-based
        assert all("tidegate_records" in statement for statement, _ in deletes + lookups)
    for statement, plan in deletes + lookups:
        if target.dialect == "postgresql":
            scans = [line for line in plan.splitlines() if "Seq Scan on" in line]
            assert all("tidegate_records" in line for line in scans), f"{statement}\n{plan}"
            conditions = " ".join(line for line in plan.splitlines() if "Index Cond" in line)
            wanted = ("key_sha1",) if "tidegate_entity_version" in statement else ("region",)
            for column in wanted:
                assert column in conditions, f"{column} not in the index condition:\n{plan}"
        else:
            scans = [line for line in plan.splitlines() if line.startswith("SCAN order")]
            assert not scans, f"{statement}\n{plan}"
            assert "SEARCH" in plan, f"{statement}\n{plan}"
