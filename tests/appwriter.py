"""The application of tests/test_guarantees.py: random transactions on its five tables.

`parent` (awkward values of every common type) and `child line` (a composite key) from
tests/tables/helpers.py, and `orders` with its children `order_lines` and `order_notes`
(composite keys that begin with the root's key) from tests/entities/test_initial.py.
Changes are inserts, updates, deletes, primary-key changes of a root (with its children
moved over, the only way the foreign keys allow) and of a child (moved to another root).
Each transaction runs on a connection of its own and touches only root keys that no other
open transaction holds, so the test's writers never wait for each other; children are
changed only under their root, so the foreign keys hold on every dialect (SQLite does
not enforce them, and an orphan would be in no entity).
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st

from tests.conftest import Source
from tests.entities.test_initial import order_tables
from tests.tables.helpers import NASTY_TEXT, sample_tables
from tests.tables.test_export import parent_values

PARENT, CHILD = sample_tables()
ORDERS, LINES, NOTES = order_tables()
TABLES = (PARENT, CHILD, ORDERS, LINES, NOTES)
PARENT_KEYS = range(1, 25)  # and 100-160 for keys moved away
REGIONS = ("EU", "US", "ASIA")
ORDER_NUMBERS = range(1, 13)  # and 100-140 for keys moved away
SHORT_TEXT = [None, "", "plain", "trailing  ", 'q"uote,comma', "ü 日本", "a\nb", "\\N"]

PARENT_OPERATIONS = ["parent", "parent", "parent delete", "parent move", "line", "line delete"]
ORDER_OPERATIONS = [
    "order",
    "order",
    "order delete",
    "order move",
    "order line",
    "order line",
    "order line delete",
    "order line move",
    "note",
    "note delete",
]


def operations(kinds: list[str], min_size: int = 0) -> st.SearchStrategy[list[tuple[str, int]]]:
    """Changes to make in a transaction: (kind, seed of its random choices)."""
    change = st.tuples(st.sampled_from(kinds), st.integers(0, 2**32 - 1))
    return st.lists(change, min_size=min_size, max_size=8)


OPS = operations(PARENT_OPERATIONS + ORDER_OPERATIONS)
SOME_OPS = operations(PARENT_OPERATIONS + ORDER_OPERATIONS, 1)


class Writer:
    """An application connection with a transaction open on it, and the root keys it has
    touched (no other open transaction touches them: the test's writers never wait for
    each other)."""

    def __init__(self, engine: sa.Engine, dialect: str) -> None:
        self.conn = engine.connect()
        self.session = self._session_id(dialect)
        self.transaction = self.conn.begin()
        self.parents: set[int] = set()
        self.orders: set[tuple[str, int]] = set()
        self.tables: set[str] = set()

    def _session_id(self, dialect: str) -> int | None:
        query = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
        if dialect not in query:
            return None
        session = int(self.conn.exec_driver_sql(query[dialect]).scalar_one())
        self.conn.commit()
        return session

    def end(self, commit: bool) -> None:
        """Commit or roll back, and close the connection (also after an error in it)."""
        try:
            if commit:
                self.transaction.commit()
            elif self.transaction.is_active:
                self.transaction.rollback()
        finally:
            self.conn.close()

    def finish(self, ops: list[tuple[str, int]], others: list[Writer], commit: bool) -> None:
        """Make more changes, then commit or roll back; rolled back if a change fails."""
        try:
            self.change(ops, others)
        except BaseException:
            self.end(False)
            raise
        self.end(commit)

    def change(self, ops: list[tuple[str, int]], others: list[Writer]) -> None:
        """Make the changes `ops` in this transaction, to root keys none of `others` (the
        other open transactions) holds."""
        for kind, seed in ops:
            operation = Operation(self, others, random.Random(seed))
            if kind in ORDER_OPERATIONS:
                operation.on_orders(kind)
            else:
                operation.on_parents(kind)


def writer_engine(source: Source) -> sa.Engine:
    """The application's engine. On MariaDB at READ COMMITTED and without foreign-key
    checks, so that two of the test's writers never wait for each other's gap locks
    (InnoDB's foreign-key checks take them even at READ COMMITTED, on the neighbours of
    the keys checked; the single-threaded test would stall): the writers keep the keys
    consistent themselves. Lock waits are bounded, so that a writer stuck behind a lock
    fails instead of hanging."""
    if source.dialect == "sqlite":  # a connection may finish its transaction in a thread
        return source.engine(connect_args={"timeout": 30, "check_same_thread": False})
    if source.dialect == "postgresql":
        return source.engine(connect_args={"options": "-c lock_timeout=20s"})
    return source.engine(
        isolation_level="READ COMMITTED",
        connect_args={
            "init_command": "SET SESSION innodb_lock_wait_timeout = 20, foreign_key_checks = 0"
        },
    )


class Operation:
    """One random change, made on a writer's connection to root keys no other open
    transaction holds."""

    def __init__(self, writer: Writer, others: list[Writer], rng: random.Random) -> None:
        self.conn = writer.conn
        self.writer = writer
        self.rng = rng
        self.taken_parents = set().union(*(w.parents for w in others))
        self.taken_orders = set().union(*(w.orders for w in others))

    def _parent(self, keys: range | list[int]) -> int | None:
        free = [key for key in keys if key not in self.taken_parents]
        if not free:
            return None
        key = self.rng.choice(free)
        self.writer.parents.add(key)
        return key

    def _order(self, numbers: range) -> tuple[str, int] | None:
        free = [(r, n) for r in REGIONS for n in numbers if (r, n) not in self.taken_orders]
        if not free:
            return None
        key = self.rng.choice(free)
        self.writer.orders.add(key)
        return key

    def _exists(self, table: sa.Table, **key: Any) -> bool:
        query = sa.select(sa.literal(1)).select_from(table)
        query = query.where(*[table.c[name] == value for name, value in key.items()])
        return self.conn.execute(query).first() is not None

    def on_parents(self, kind: str) -> None:
        rng, conn = self.rng, self.conn
        key = self._parent(PARENT_KEYS)
        if key is None:
            return
        self.writer.tables.update({PARENT.name, CHILD.name})
        exists = self._exists(PARENT, id=key)
        if kind == "parent":
            values = parent_values(rng, key)
            if exists:
                del values["id"]
                conn.execute(PARENT.update().where(PARENT.c.id == key).values(values))
            else:
                conn.execute(PARENT.insert(), [values])
        elif kind == "parent delete" and exists:
            conn.execute(CHILD.delete().where(CHILD.c.parent_id == key))
            conn.execute(PARENT.delete().where(PARENT.c.id == key))
        elif kind == "parent move" and exists:  # a primary-key change
            moved = self._parent(range(100, 161))
            if moved is not None and not self._exists(PARENT, id=moved):
                conn.execute(PARENT.update().where(PARENT.c.id == key).values(id=moved))
        elif kind == "line":
            code = rng.choice(["a", "b,c", 'd"e', "ü"])
            where = (CHILD.c.parent_id == key) & (CHILD.c.code == code)
            if self._exists(CHILD, parent_id=key, code=code):
                conn.execute(CHILD.update().where(where).values(qty=CHILD.c.qty + 1))
            else:
                values = {"parent_id": key, "code": code, "qty": 1, "note": rng.choice(NASTY_TEXT)}
                conn.execute(CHILD.insert(), [values])
        elif kind == "line delete":
            conn.execute(CHILD.delete().where(CHILD.c.parent_id == key))

    def on_orders(self, kind: str) -> None:
        key = self._order(ORDER_NUMBERS)
        if key is None:
            return
        self.writer.tables.update({ORDERS.name, LINES.name, NOTES.name})
        region, number = key
        exists = self._exists(ORDERS, region=region, order_no=number)
        if kind == "order":
            self._put_order(region, number, exists)
        elif kind == "order delete" and exists:
            for child in (LINES, NOTES):
                self.conn.execute(child.delete().where(self._of(child, region, number)))
            self.conn.execute(ORDERS.delete().where(self._of(ORDERS, region, number)))
        elif kind == "order move" and exists:
            self._move_order(region, number)
        elif kind == "order line":
            if not exists:
                self._put_order(region, number, False)
            line = self.rng.randint(1, 4)
            where = self._of(LINES, region, number) & (LINES.c.line_no == line)
            if self._exists(LINES, region=region, order_no=number, line_no=line):
                self.conn.execute(
                    LINES.update().where(where).values(sku=f"S{self.rng.random()}"[:20])
                )
            else:
                values = {"region": region, "order_no": number, "line_no": line, "sku": "new"}
                self.conn.execute(LINES.insert(), [values])
        elif kind == "order line delete":
            line = self.rng.randint(1, 4)
            where = self._of(LINES, region, number) & (LINES.c.line_no == line)
            self.conn.execute(LINES.delete().where(where))
        elif kind == "order line move" and exists:  # a child row moves to another root
            self._move_line(region, number)
        elif kind == "note" and exists:
            note = self.rng.choice(["gift", "memo"])
            where = self._of(NOTES, region, number) & (NOTES.c.kind == note)
            body = self.rng.choice(NASTY_TEXT)
            if self._exists(NOTES, region=region, order_no=number, kind=note):
                self.conn.execute(NOTES.update().where(where).values(body=body))
            else:
                values = {"region": region, "order_no": number, "kind": note, "body": body}
                self.conn.execute(NOTES.insert(), [values])
        elif kind == "note delete":
            self.conn.execute(NOTES.delete().where(self._of(NOTES, region, number)))

    @staticmethod
    def _of(table: sa.Table, region: str, number: int) -> sa.ColumnElement[bool]:
        return (table.c.region == region) & (table.c.order_no == number)

    def _order_values(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "note": rng.choice(SHORT_TEXT),
            "total": rng.choice([None, Decimal(rng.randint(-(10**12), 10**12)) / 1000]),
            "placed": rng.choice(
                [None, dt.datetime(2026, 1, 1, 12, 0, 0, rng.randint(0, 999_999))]
            ),
            "ratio": rng.choice([None, 0.1, 1e20, -2.5]),
        }

    def _put_order(self, region: str, number: int, exists: bool) -> None:
        values = self._order_values()
        if exists:
            where = self._of(ORDERS, region, number)
            self.conn.execute(ORDERS.update().where(where).values(values))
        else:
            self.conn.execute(ORDERS.insert(), [{"region": region, "order_no": number, **values}])

    def _move_order(self, region: str, number: int) -> None:
        """A root moved to another key with its children: a copy inserted, the children
        moved over, the old root deleted (the foreign keys allow no other order)."""
        moved = self._order(range(100, 141))
        if moved is None or self._exists(ORDERS, region=moved[0], order_no=moved[1]):
            return
        row = self.conn.execute(sa.select(ORDERS).where(self._of(ORDERS, region, number))).one()
        values = {**row._asdict(), "region": moved[0], "order_no": moved[1]}
        self.conn.execute(ORDERS.insert(), [values])
        for child in (LINES, NOTES):
            self.conn.execute(
                child.update()
                .where(self._of(child, region, number))
                .values(region=moved[0], order_no=moved[1])
            )
        self.conn.execute(ORDERS.delete().where(self._of(ORDERS, region, number)))

    def _move_line(self, region: str, number: int) -> None:
        lines = (
            self.conn.execute(sa.select(LINES.c.line_no).where(self._of(LINES, region, number)))
            .scalars()
            .all()
        )
        other = self._order(ORDER_NUMBERS)
        if not lines or other is None or other == (region, number):
            return
        if not self._exists(ORDERS, region=other[0], order_no=other[1]):
            return
        taken = set(
            self.conn.execute(sa.select(LINES.c.line_no).where(self._of(LINES, *other))).scalars()
        )
        line = self.rng.choice(lines)
        free = max(taken | {line}) + 1
        self.conn.execute(
            LINES.update()
            .where(self._of(LINES, region, number) & (LINES.c.line_no == line))
            .values(region=other[0], order_no=other[1], line_no=free)
        )
