"""Read whole entities from the source: a root row with all its child rows, consistently.

Entities are read in batches of root keys, in key order: each batch is one short
transaction (REPEATABLE READ where the server has it) reading the roots and then every
child row of those roots, so a record never mixes two states of the source, and no
transaction stays open long enough to hold up writers (on SQLite a reader blocks commits).
Values come from the driver untouched (no SQLAlchemy type conversion), so nothing is
rounded on the way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.db import Database
from tidegate.entities.catalog import Entity
from tidegate.formats.jsonl import entity_record

BATCH_ROOTS = 1000

Key = tuple[Any, ...]


@dataclass(frozen=True)
class _Table:
    """An entity table with untyped columns: values pass through as the driver gives them."""

    name: str
    clause: sa.TableClause
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the columns holding the root's key
    datetime_columns: frozenset[str]  # typed as date-times (SQLite stores them as text)


class EntityReader:
    """Reads the records of one entity."""

    def __init__(self, db: Database, entity: Entity, zone: tzinfo) -> None:
        self.db = db
        self.entity = entity
        self.zone = zone
        inspector = sa.inspect(db.engine)
        self.tables = []
        for table in entity.tables:
            columns = inspector.get_columns(table, schema=db.schema)
            names = tuple(c["name"] for c in columns)
            times = frozenset(c["name"] for c in columns if isinstance(c["type"], sa.DateTime))
            clause = sa.table(table, *[sa.column(n) for n in names], schema=db.schema)
            self.tables.append(_Table(table, clause, names, entity.key_columns(table), times))
        self.root = self.tables[0]

    def count(self) -> int:
        """How many entities there are (roots)."""
        with self.db.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(self.root.clause)).scalar() or 0
            )

    def bounds(self, parts: int) -> list[Key | None]:
        """Root keys splitting the entities into `parts` ranges of about equal size:
        [None, k1, …, None], range i being [bounds[i], bounds[i + 1])."""
        total = self.count()
        keys = self._key_columns(self.root)
        cuts: list[Key | None] = [None]
        with self.db.engine.connect() as conn:
            for part in range(1, parts):
                offset = total * part // parts
                row = conn.execute(sa.select(*keys).order_by(*keys).offset(offset).limit(1)).first()
                if row is not None and tuple(row) != cuts[-1]:
                    cuts.append(tuple(row))
        return [*cuts, None]

    def records(self, low: Key | None, high: Key | None) -> Iterator[bytes]:
        """Every entity with a root key in [low, high), as record lines, in key order."""
        after: Key | None = None
        while True:
            lines, last = self._batch(low, after, high)
            yield from lines
            if last is None:
                return
            after, low = last, None

    def _batch(
        self, low: Key | None, after: Key | None, high: Key | None
    ) -> tuple[list[bytes], Key | None]:
        options: dict[str, Any] = {}
        if self.db.dialect in ("postgresql", "mysql"):
            options["isolation_level"] = "REPEATABLE READ"
        with self.db.engine.connect().execution_options(**options) as conn, conn.begin():
            snapshot = datetime.now(UTC)
            roots = self._roots(conn, low, after, high)
            if not roots:
                return [], None
            first, last = roots[0][0], roots[-1][0]
            children = [self._children(conn, table, first, last) for table in self.tables[1:]]
        lines = []
        for key, row in roots:
            data = {self.root.name: [row]}
            for table, rows in zip(self.tables[1:], children, strict=True):
                data[table.name] = rows.get(key, [])
            lines.append(entity_record(self.entity.name, snapshot, key, data, self.zone))
        return lines, (last if len(roots) == BATCH_ROOTS else None)

    def records_for(self, keys: Sequence[Key]) -> Iterator[bytes]:
        """The current state of each entity named by its root key, in the order given: a
        record, or a DELETED record when its root row no longer exists."""
        for start in range(0, len(keys), BATCH_ROOTS):
            yield from self._keyed_batch(keys[start : start + BATCH_ROOTS])

    def _keyed_batch(self, keys: Sequence[Key]) -> list[bytes]:
        options: dict[str, Any] = {}
        if self.db.dialect in ("postgresql", "mysql"):
            options["isolation_level"] = "REPEATABLE READ"
        with self.db.engine.connect().execution_options(**options) as conn, conn.begin():
            snapshot = datetime.now(UTC)
            found = self._rows_for(conn, self.root, keys)
            children = [self._rows_for(conn, table, keys) for table in self.tables[1:]]
        lines = []
        empty: dict[str, list[dict[str, Any]]] = {table.name: [] for table in self.tables}
        for key in keys:
            roots = found.get(_normal(key))
            if not roots:
                lines.append(
                    entity_record(self.entity.name, snapshot, key, empty, self.zone, deleted=True)
                )
                continue
            data = {self.root.name: roots}
            for table, rows in zip(self.tables[1:], children, strict=True):
                data[table.name] = rows.get(_normal(key), [])
            lines.append(entity_record(self.entity.name, snapshot, key, data, self.zone))
        return lines

    def _rows_for(
        self, conn: Connection, table: _Table, keys: Sequence[Key]
    ) -> dict[Key, list[dict[str, Any]]]:
        columns = self._key_columns(table)
        others = [c for c in table.clause.columns if c.name not in table.key]
        query = (
            sa.select(*table.clause.columns)
            .where(_tuple(columns).in_([_values(key) for key in keys]))
            .order_by(*columns, *others)
        )
        grouped: dict[Key, list[dict[str, Any]]] = {}
        for raw in conn.execute(query):
            row = self._row(table, raw)
            grouped.setdefault(_normal(tuple(row[k] for k in table.key)), []).append(row)
        return grouped

    def _roots(
        self, conn: Connection, low: Key | None, after: Key | None, high: Key | None
    ) -> list[tuple[Key, dict[str, Any]]]:
        table = self.root
        keys = self._key_columns(table)
        query = sa.select(*table.clause.columns).order_by(*keys).limit(BATCH_ROOTS)
        if low is not None:
            query = query.where(_tuple(keys) >= _values(low))
        if after is not None:
            query = query.where(_tuple(keys) > _values(after))
        if high is not None:
            query = query.where(_tuple(keys) < _values(high))
        rows = [self._row(table, row) for row in conn.execute(query)]
        return [(tuple(row[k] for k in table.key), row) for row in rows]

    def _children(
        self, conn: Connection, table: _Table, first: Key, last: Key
    ) -> dict[Key, list[dict[str, Any]]]:
        keys = self._key_columns(table)
        query = (
            sa.select(*table.clause.columns)
            .where(_tuple(keys) >= _values(first), _tuple(keys) <= _values(last))
            .order_by(*keys, *[c for c in table.clause.columns if c.name not in table.key])
        )
        grouped: dict[Key, list[dict[str, Any]]] = {}
        for raw in conn.execute(query):
            row = self._row(table, raw)
            grouped.setdefault(tuple(row[k] for k in table.key), []).append(row)
        return grouped

    def _row(self, table: _Table, raw: Any) -> dict[str, Any]:
        row = dict(zip(table.columns, raw, strict=True))
        for name in table.datetime_columns:  # SQLite keeps date-times as ISO text
            value = row[name]
            if isinstance(value, str):
                # Text that is no date-time after all is exported as the text it is.
                with contextlib.suppress(ValueError):
                    row[name] = datetime.fromisoformat(value)
        return row

    @staticmethod
    def _key_columns(table: _Table) -> list[sa.ColumnClause[Any]]:
        return [table.clause.c[name] for name in table.key]


def _normal(key: Key) -> Key:
    """A key compared as text: a queued key comes back from JSON (a number may be a string
    or a Decimal there) while the same key read from its row has the column's type."""
    return tuple(str(value) for value in key)


def _tuple(columns: Sequence[sa.ColumnClause[Any]]) -> Any:
    return columns[0] if len(columns) == 1 else sa.tuple_(*columns)


def _values(key: Key) -> Any:
    """A key as bound parameters passed to the driver untouched."""
    params = [sa.bindparam(None, value, type_=sa.types.NullType()) for value in key]
    return params[0] if len(params) == 1 else sa.tuple_(*params)
