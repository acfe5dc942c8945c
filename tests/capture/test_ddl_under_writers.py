"""Capture never breaks the application's writes (SPEC, "Schema changes in the source").

On PostgreSQL the capture functions name the key and time columns; after one of them is
renamed or dropped they read the key by column position instead. On SQLite a rename
rewrites the triggers. On MariaDB a trigger names its columns in a way no rename follows:
the DDL a DBA may run there without tidegate (docs/schema-changes.md) is every change but
a rename or drop of a captured column. A writer keeps writing through each DDL, and
every change it made is captured under the key it wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidegate
from tests.capture.test_install import claimed
from tests.conftest import Source, _make_source
from tidegate import api


def _orders() -> tuple[sa.Table, sa.Table]:
    metadata = sa.MetaData()
    orders = sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text),
        sa.Column("placed", sa.DateTime),
    )
    lines = sa.Table(
        "order_line",
        metadata,
        sa.Column(
            "order_id",
            sa.Integer,
            sa.ForeignKey("orders.id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sku", sa.Text),
    )
    return orders, lines


class Writer(threading.Thread):
    """The application: inserts rows of `orders` by position and deletes some by key. It
    learns a renamed key column the way an application is redeployed: between two of its
    transactions (`paused`)."""

    def __init__(self, source: Source) -> None:
        super().__init__(daemon=True)
        self.engine = source.engine()
        self.orders = qualified(source, "orders")
        self.key = "id"
        self.paused = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.written: list[tuple[str, int]] = []  # (op, key) in commit order

    def run(self) -> None:
        key = 1000
        while not self.stop.is_set():
            key += 1
            try:
                with self.paused:
                    self._write(key)
            except BaseException as error:  # the application's write failed: the defect
                self.errors.append(error)
                return

    def _write(self, key: int) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO {self.orders} ({self.key}) VALUES ({key})")
        self.written.append(("I", key))
        if key % 3 == 0:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"DELETE FROM {self.orders} WHERE {self.key} = {key}")
            self.written.append(("D", key))


def qualified(source: Source, table: str) -> str:
    if source.dialect == "mysql":
        return f"`{table}`"
    return f'"{source.schema}"."{table}"' if source.schema else f'"{table}"'


EVERYWHERE = ("postgresql", "sqlite", "mysql")
# A change, its statements, and the sources where a DBA may run it while the application
# writes, without tidegate.
DDL: list[tuple[str, list[str], tuple[str, ...]]] = [
    (
        "rename the key column",
        ["ALTER TABLE {orders} RENAME COLUMN id TO order_id"],
        ("postgresql", "sqlite"),
    ),
    (
        "rename the time column",
        ["ALTER TABLE {orders} RENAME COLUMN placed TO placed_at"],
        ("postgresql", "sqlite"),
    ),
    # SQLite refuses to drop a column a trigger names (the DDL fails, not the writes).
    ("drop the time column", ["ALTER TABLE {orders} DROP COLUMN placed"], ("postgresql",)),
    (
        "rename the key column of a child",
        ["ALTER TABLE {order_line} RENAME COLUMN order_id TO parent_id"],
        ("postgresql", "sqlite"),
    ),
    (
        "add a column with a default",
        ["ALTER TABLE {orders} ADD COLUMN qty INTEGER DEFAULT 7"],
        EVERYWHERE,
    ),
    ("drop a column capture does not name", ["ALTER TABLE {orders} DROP COLUMN note"], EVERYWHERE),
    # PostgreSQL: the writer's session planned the capture function with the old types.
    ("widen the key", ["ALTER TABLE {orders} ALTER COLUMN id TYPE bigint"], ("postgresql",)),
    (
        "retype the time column",
        ["ALTER TABLE {orders} ALTER COLUMN placed TYPE timestamptz"],
        ("postgresql",),
    ),
    ("retype the time column", ["ALTER TABLE {orders} MODIFY placed DATETIME(3)"], ("mysql",)),
]
CASES = [
    pytest.param(change, statements, dialect, id=f"{dialect}: {change}")
    for change, statements, dialects in DDL
    for dialect in dialects
]


@pytest.mark.parametrize(("change", "statements", "dialect"), CASES)
def test_writes_never_fail_and_every_change_is_captured(
    request: pytest.FixtureRequest, tmp_path: Path, change: str, statements: list[str], dialect: str
) -> None:
    source: Source = next(_make_source(request, dialect, tmp_path))
    orders, lines = _orders()
    source.create(orders, lines)
    config = source.config("tables.time_columns.orders=placed")
    tidegate.init(config)
    order_entity = [s.entity.name for s in api.entities_list(config) if s.entity.root == "orders"]
    api.entities_enable(config, order_entity, ongoing=True)

    names = {table: qualified(source, table) for table in ("orders", "order_line")}
    writer = Writer(source)
    writer.start()
    _wait_for(lambda: len(writer.written) >= 20 or bool(writer.errors))
    with writer.paused, source.engine().begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement.format(**names))
        if "RENAME COLUMN id TO order_id" in statements[0]:
            writer.key = "order_id"
    written_before = len(writer.written)
    _wait_for(lambda: len(writer.written) >= written_before + 20 or bool(writer.errors))
    with source.engine().begin() as conn:  # a child row written through the change
        conn.exec_driver_sql(f"INSERT INTO {names['order_line']} VALUES (1001, 1, 'sku')")
        conn.exec_driver_sql(f"UPDATE {names['order_line']} SET sku = 'other'")
    writer.stop.set()
    writer.join(30)
    assert writer.errors == [], f"{change}: the application's write failed"

    captured = [(op, key) for table, op, key in claimed(source) if table == "orders"]
    assert captured == [(op, (key,)) for op, key in writer.written]
    with source.engine().connect() as conn:
        queue = qualified(source, "tidegate_entity_pending")
        queued = conn.exec_driver_sql(f"SELECT pk FROM {queue}").scalars().all()
    assert "[1001]" in queued  # the child's changes queued its root


def _wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    event = threading.Event()
    for _ in range(int(seconds * 20)):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError("timed out")
