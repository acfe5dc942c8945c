"""Read whole entities from the source: a root row with all its child rows, consistently.

Entities are read in batches of root keys, in key order (or for a list of keys): each batch
is one short transaction (REPEATABLE READ where the server has it) reading the roots and
then every child row of those roots, so a record never mixes two states of the source, and
no transaction stays open long enough to hold up writers (on SQLite a reader blocks
commits). Values come from the driver untouched (no SQLAlchemy type conversion, which would
round some numbers), fetched as plain tuples.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.db import Database
from tidegate.entities import columns as columns_
from tidegate.entities.catalog import Entity
from tidegate.formats.jsonl import entity_record, timestamp_text

BATCH_ROOTS = 1000

Key = tuple[Any, ...]
# Rows grouped by their root key: the key value itself for a one-column key (no tuple to
# build per row), else a tuple.
Group = Any
Rows = dict[Group, list[dict[str, Any]]]


@dataclass(frozen=True)
class _Table:
    """An entity table with untyped columns: values pass through as the driver gives them.

    Attributes:
        selected: what the query selects: the columns, texts right-trimmed by the server.
        key: the columns holding the root's key; `group_of` picks the group of a fetched
            row (see `Group`).
        order: the table's own primary key, for a stable row order within an entity.
        text_times: positions of date-time columns (SQLite keeps those as ISO text).
        nullable: whether a fetched row may still hold a NULL (None).
    """

    name: str
    clause: sa.TableClause
    columns: tuple[str, ...]
    selected: tuple[sa.ColumnElement[Any], ...]
    key: tuple[str, ...]
    group_of: Callable[[Sequence[Any]], Group]
    order: tuple[str, ...]
    text_times: tuple[int, ...]
    nullable: bool


class EntityReader:
    """Reads the records of one entity."""

    def __init__(self, db: Database, entity: Entity, zone: tzinfo) -> None:
        self.db = db
        self.entity = entity
        # UTC itself, not a ZoneInfo of it: the format's fast paths test for it.
        self.zone: tzinfo = UTC if getattr(zone, "key", None) == "UTC" else zone
        inspector = sa.inspect(db.engine)
        self.tables = [self._table(inspector, table) for table in entity.tables]
        self.root = self.tables[0]

    def _table(self, inspector: Any, name: str) -> _Table:
        columns = inspector.get_columns(name, schema=self.db.schema)
        names = tuple(c["name"] for c in columns)
        clause = sa.table(name, *[sa.column(n) for n in names], schema=self.db.schema)
        key = self.entity.key_columns(name)
        pk = inspector.get_pk_constraint(name, schema=self.db.schema)
        times = tuple(i for i, c in enumerate(columns) if isinstance(c["type"], sa.DateTime))
        selected = tuple(
            columns_.selected(self.db.dialect, clause.c[c["name"]], c, self.zone, key)
            for c in columns
        )
        return _Table(
            name,
            clause,
            names,
            selected,
            key,
            operator.itemgetter(*(names.index(k) for k in key)),
            tuple(pk.get("constrained_columns") or key),
            times if self.db.dialect == "sqlite" else (),
            any(_may_be_null(e, c) for e, c in zip(selected, columns, strict=True)),
        )

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
        keys = _columns(self.root, self.root.key)
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
            lines, last = self._range_batch(low, after, high)
            yield from lines
            if last is None:
                return
            after, low = last, None

    def records_for(self, keys: Sequence[Key]) -> Iterator[bytes]:
        """The current state of each entity named by its root key, in the order given: a
        record, or a DELETED record when its root row no longer exists."""
        for start in range(0, len(keys), BATCH_ROOTS):
            yield from self._keyed_batch(keys[start : start + BATCH_ROOTS])

    def _range_batch(
        self, low: Key | None, after: Key | None, high: Key | None
    ) -> tuple[list[bytes], Key | None]:
        root = self.root
        keys = _columns(root, root.key)
        query = sa.select(*root.selected).order_by(*keys).limit(BATCH_ROOTS)
        if low is not None:
            query = query.where(_tuple(keys) >= _values(low))
        if after is not None:
            query = query.where(_tuple(keys) > _values(after))
        if high is not None:
            query = query.where(_tuple(keys) < _values(high))
        with self._snapshot() as conn:
            stamp = timestamp_text(datetime.now(UTC), UTC)
            roots = self._fetch(conn, root, query)
            if not roots:
                return [], None
            found = [_key(group) for group in roots]
            children = [
                self._fetch(conn, table, self._between(table, found[0], found[-1]))
                for table in self.tables[1:]
            ]
        lines = [
            self._record(stamp, group, key, roots, children)
            for group, key in zip(roots, found, strict=True)
        ]
        return lines, (found[-1] if len(found) == BATCH_ROOTS else None)

    def _keyed_batch(self, keys: Sequence[Key]) -> list[bytes]:
        with self._snapshot() as conn:
            stamp = timestamp_text(datetime.now(UTC), UTC)
            roots = self._fetch(conn, self.root, self._among(self.root, keys), by_text=True)
            children = [
                self._fetch(conn, table, self._among(table, keys), by_text=True)
                for table in self.tables[1:]
            ]
        empty: dict[str, list[dict[str, Any]]] = {table.name: [] for table in self.tables}
        lines = []
        for key in keys:
            found = _normal(key)
            if found in roots:
                lines.append(self._record(stamp, found, key, roots, children))
            else:
                lines.append(
                    entity_record(self.entity.name, stamp, key, empty, self.zone, deleted=True)
                )
        return lines

    def _record(
        self, stamp: str, group: Group, shown: Key, roots: Rows, children: list[Rows]
    ) -> bytes:
        """The record of the entity whose rows are grouped under `group`; `shown` is the
        key as its PK fields show it."""
        data = {self.root.name: roots[group]}
        for table, rows in zip(self.tables[1:], children, strict=True):
            data[table.name] = rows.get(group, [])
        return entity_record(self.entity.name, stamp, shown, data, self.zone, prepared=True)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """One short transaction that every read of a batch shares."""
        options: dict[str, Any] = {}
        if self.db.dialect in ("postgresql", "mysql"):
            options["isolation_level"] = "REPEATABLE READ"
        with self.db.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn

    def _between(self, table: _Table, first: Key, last: Key) -> sa.Select[Any]:
        keys = _columns(table, table.key)
        return (
            sa.select(*table.selected)
            .where(_tuple(keys) >= _values(first), _tuple(keys) <= _values(last))
            .order_by(*_columns(table, table.order))
        )

    def _among(self, table: _Table, keys: Sequence[Key]) -> sa.Select[Any]:
        columns = _columns(table, table.key)
        return (
            sa.select(*table.selected)
            .where(_tuple(columns).in_([_values(key) for key in keys]))
            .order_by(*_columns(table, table.order))
        )

    def _fetch(
        self, conn: Connection, table: _Table, query: sa.Select[Any], *, by_text: bool = False
    ) -> Rows:
        """Rows grouped by root key, groups and rows in query order, NULLs as "" (see
        `entity_record`'s `prepared`). With `by_text`, groups are keyed by the key's text,
        to match keys that came back from JSON (ongoing runs)."""
        # The driver's own cursor: plain tuples, no per-row SQLAlchemy objects; rows are
        # grouped and made dicts by C code (groupby, map, zip) wherever no value needs a
        # Python step.
        fetched = columns_.fetch_all(conn, query)
        times = table.text_times
        if times or table.nullable:
            fetched = [
                self._prepared(values, times) if times or None in values else values
                for values in fetched
            ]
        grouped: Rows = {}
        for group, rows in itertools.groupby(fetched, table.group_of):
            made = list(map(dict, map(zip, itertools.repeat(table.columns), rows)))
            found = grouped.setdefault(_normal(_key(group)) if by_text else group, made)
            if found is not made:  # the query's order did not keep the group together
                found.extend(made)
        return grouped

    def _prepared(self, values: Sequence[Any], times: tuple[int, ...]) -> list[Any]:
        prepared = ["" if value is None else value for value in values]
        for index in times:
            if type(prepared[index]) is str and prepared[index]:
                prepared[index] = self._text_time(prepared[index])
        return prepared

    def _text_time(self, text: str) -> object:
        """A date-time SQLite keeps as ISO text: as the record writes it when it is in the
        usual `YYYY-MM-DD HH:MM:SS[.ffffff]` form and in UTC, else parsed (or left as the
        text it is when it is no date-time)."""
        if self.zone is UTC and text[10:11] in (" ", "T") and text[13:14] == ":":
            if len(text) == 26 and text[19] == ".":
                return f"{text[:10]}T{text[11:]}Z"
            if len(text) == 19:
                return f"{text[:10]}T{text[11:]}.000000Z"
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return text


def _columns(table: _Table, names: Sequence[str]) -> list[sa.ColumnClause[Any]]:
    return [table.clause.c[name] for name in names]


def _key(group: Group) -> Key:
    """A group's root key as a tuple."""
    return group if type(group) is tuple else (group,)


def _may_be_null(element: sa.ColumnElement[Any], reflected: Any) -> bool:
    """Whether a selected column may bring NULLs (None) often enough to be worth replacing
    in Python: a nullable column selected as it is (`columns.selected` makes the others
    non-null). (A NULL that gets through anyway is caught by `entity_record`'s check of
    the written line.)"""
    return isinstance(element, sa.ColumnClause) and bool(reflected.get("nullable", True))


def _normal(key: Key) -> Key:
    """A key compared as text: a queued key comes back from JSON (where a number may be a
    Decimal) while the same key read from its row has the column's own type."""
    return tuple(str(value) for value in key)


def _tuple(columns: Sequence[sa.ColumnClause[Any]]) -> Any:
    return columns[0] if len(columns) == 1 else sa.tuple_(*columns)


def _values(key: Key) -> Any:
    """A key as bound parameters passed to the driver untouched."""
    params = [sa.bindparam(None, value, type_=sa.types.NullType()) for value in key]
    return params[0] if len(params) == 1 else sa.tuple_(*params)
