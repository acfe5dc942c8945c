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
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.clients import client, stream_lines
from tidegate.db import Database, inline_sql, type_text
from tidegate.entities import sqliteshell
from tidegate.entities.catalog import Entity
from tidegate.formats.jsonl import MAX_KEY_COLUMNS, entity_record, key_text, timestamp_text
from tidegate.sources.base import JsonSource, ReadColumn

# Entities read per transaction when exporting by key range: larger batches spend less on
# starting transactions (5,000 against 1,000 was 10% faster on PostgreSQL), smaller ones
# hold a snapshot (on SQLite, a lock writers wait on) for less time.
BATCH_ROOTS = 5000
# Keys looked up per query when exporting a list of keys (an IN list of bound values).
KEYS_PER_QUERY = 1000

Key = tuple[Any, ...]
# Rows grouped by their root key: the key value itself for a one-column key (no tuple to
# build per row), else a tuple.
Group = Any
Rows = Mapping[Group, Sequence[dict[str, Any]]]
R = TypeVar("R")
Fetch = Callable[[Connection, "_Table", sa.Select[Any]], Mapping[Group, R]]


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
        key_times: positions in the key of date and date-time columns (see `_normal`).
        described: the table as a loader needs it (see `EntityReader.definition`).
        json: each row as JSON text made by the server, and the FROM that needs (None:
            this table is read through the Python path).
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
    key_times: frozenset[int]
    json: JsonSource | None
    described: dict[str, Any]


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
        # The fast path (`SourceDialect.row_json`) when the server can write every table's
        # rows.
        self.fast = all(table.json is not None for table in self.tables)
        self._head = '{"OBJ":' + _json_text(entity.name) + ',"TIMESTAMP":"'
        self._labels = [_json_text(table.name) + ":[" for table in self.tables]

    def _table(self, inspector: Any, name: str) -> _Table:
        columns = inspector.get_columns(name, schema=self.db.schema)
        names = tuple(c["name"] for c in columns)
        clause = sa.table(name, *[sa.column(n) for n in names], schema=self.db.schema)
        key = self.entity.key_columns(name)
        pk = inspector.get_pk_constraint(name, schema=self.db.schema)
        times = tuple(i for i, c in enumerate(columns) if isinstance(c["type"], sa.DateTime))
        selected = tuple(
            self.db.dialect.entity_column(clause.c[c["name"]], c, self.zone, key) for c in columns
        )
        return _Table(
            name,
            clause,
            names,
            selected,
            key,
            operator.itemgetter(*(names.index(k) for k in key)),
            tuple(pk.get("constrained_columns") or key),
            times if self.db.dialect.times_as_text else (),
            any(_may_be_null(e, c) for e, c in zip(selected, columns, strict=True)),
            frozenset(i for i, name in enumerate(key) if _is_time(columns, name)),
            self.db.dialect.row_json(clause, columns, self.zone),
            {
                "name": name,
                "root_key": list(key),
                "primary_key": list(pk.get("constrained_columns") or key),
                "columns": [
                    {
                        "name": c["name"],
                        "type": self.db.dialect.portable_type(c["type"]),
                        "sql_type": type_text(self.db, c["type"]),
                        "nullable": bool(c.get("nullable", True)),
                    }
                    for c in columns
                ],
            },
        )

    def definition(self) -> dict[str, Any]:
        """The entity's tables for the run manifest: columns (portable types), primary key,
        and the columns holding the root's key, root first."""
        return {"tables": [table.described for table in self.tables]}

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

    def record_batches(self, low: Key | None, high: Key | None) -> Iterator[list[bytes]]:
        """Every entity with a root key in [low, high), as record lines in key order, a
        batch of them at a time."""
        with self._explained():
            yield from self._record_batches(low, high)

    def _record_batches(self, low: Key | None, high: Key | None) -> Iterator[list[bytes]]:
        shell = self._shell()
        if shell is not None:
            yield from self._records_from_shell(shell, low, high)
            return
        after: Key | None = None
        while True:
            lines, last = self._range_batch(low, after, high)
            yield lines
            if last is None:
                return
            after, low = last, None

    def _shell(self) -> str | None:
        """The sqlite3 shell, when it can write this entity's records (sqliteshell.py)."""
        shell = self.db.dialect.entity_shell
        if shell is None or (self.zone is not UTC and self._has_times()):
            return None
        program = client(shell)
        return program if program and sqliteshell.usable(self._shell_tables()) else None

    def _has_times(self) -> bool:
        return any(table.text_times for table in self.tables)

    def _shell_tables(self) -> list[sqliteshell.ShellTable]:
        return [
            sqliteshell.ShellTable(
                t.clause,
                t.columns,
                frozenset(t.columns[i] for i in t.text_times),
                t.key,
                t.order,
                {c["name"]: c["type"] for c in t.described["columns"]},
            )
            for t in self.tables
        ]

    def _records_from_shell(
        self, shell: str, low: Key | None, high: Key | None
    ) -> Iterator[list[bytes]]:
        """The records the shell writes; one holding a `null` (a value the shell cannot
        write as the format wants) is read again through the Python path."""
        roots = self._count_range(low, high)
        script = sqliteshell.script(
            self.entity.name,
            self._shell_tables(),
            low,
            high,
            roots // BATCH_ROOTS + 1,
            BATCH_ROOTS,
            lambda statement: inline_sql(self.db, statement),
        )
        database = os.path.abspath(self.db.engine.url.database or "")
        arguments = [shell, "-batch", "-bail", "-readonly", "-noheader", "-list"]
        arguments += ["-cmd", ".timeout 60000", database]
        doing = f"reading entity {self.entity.name} with sqlite3"
        for lines in stream_lines(arguments, os.environ, doing, script.encode()):
            if b"null" not in b"".join(lines):
                yield lines
                continue
            for line in lines:
                if b"null" in line:
                    record = orjson.loads(line)
                    key = tuple(record[f"PK{i}"] for i in range(1, len(self.root.key) + 1))
                    yield self._keyed_batch([key])
                else:
                    yield [line]

    def _count_range(self, low: Key | None, high: Key | None) -> int:
        query = self._in_range(sa.select(sa.func.count()).select_from(self.root.clause), low, high)
        with self.db.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def records_for(self, keys: Sequence[Key]) -> Iterator[bytes]:
        """The current state of each entity named by its root key, in the order given: a
        record, or a DELETED record when its root row no longer exists."""
        with self._explained():
            for start in range(0, len(keys), KEYS_PER_QUERY):
                yield from self._keyed_batch(keys[start : start + KEYS_PER_QUERY])

    @contextlib.contextmanager
    def _explained(self) -> Iterator[None]:
        """A read the source's SQL failed on purpose (a value it must not write, see
        `SourceDialect.explain_failed_read`) raises that refusal instead."""
        try:
            yield
        except Exception as error:
            explained = self._explanation(error)
            if explained is None:
                raise
            raise explained from error

    def _explanation(self, error: Exception) -> Exception | None:
        with self.db.engine.connect() as conn:
            for table in self.tables:
                columns = [
                    ReadColumn(c["name"], c["type"], c["sql_type"])
                    for c in table.described["columns"]
                ]
                explained = self.db.dialect.explain_failed_read(
                    conn, table.clause, columns, table.key, error
                )
                if explained is not None:
                    return explained
        return None

    def _range_batch(
        self, low: Key | None, after: Key | None, high: Key | None
    ) -> tuple[list[bytes], Key | None]:
        root = self.root
        keys = _columns(root, root.key)
        query = self._in_range(self._select(root), low, high).order_by(*keys).limit(BATCH_ROOTS)
        if after is not None:
            query = query.where(_tuple(keys) > _values(after))
        with self._snapshot() as conn:
            stamp = timestamp_text(datetime.now(UTC), UTC)
            if self.fast:
                texts, found, child_texts = self._read(conn, self._fetch_json, query)
                lines = self._json_lines(conn, stamp, texts, found, child_texts)
            else:
                roots, found, children = self._read(conn, self._fetch, query)
        if not self.fast:  # made after the transaction: it holds up no writer meanwhile
            lines = [
                self._record(stamp, group, key, roots, children)
                for group, key in zip(roots, found, strict=True)
            ]
        return lines, (found[-1] if len(found) == BATCH_ROOTS else None)

    def _read(
        self, conn: Connection, fetch: Fetch[R], query: sa.Select[Any]
    ) -> tuple[Mapping[Group, R], list[Key], list[Mapping[Group, R]]]:
        """A batch's roots (from `query`), their keys in order, and their children."""
        roots = fetch(conn, self.root, query)
        if not roots:
            return roots, [], []
        found = [_key(group) for group in roots]
        children = [
            fetch(conn, table, self._between(table, found[0], found[-1]))
            for table in self.tables[1:]
        ]
        return roots, found, children

    def _json_lines(
        self,
        conn: Connection,
        stamp: str,
        roots: Mapping[Group, str],
        keys: list[Key],
        children: list[Mapping[Group, str]],
    ) -> list[bytes]:
        """The records joined from rows the server wrote as JSON; an entity with a value
        the server could not write (see `SourceDialect.row_json`) is read again through the
        Python path, in the same snapshot."""
        lines: list[bytes | None] = [
            self._json_line(stamp, group, key, roots, children)
            for group, key in zip(roots, keys, strict=True)
        ]
        again = [index for index, line in enumerate(lines) if line is None]
        if again:
            redone = self._keyed_lines(conn, stamp, [keys[index] for index in again])
            for index, line in zip(again, redone, strict=True):
                lines[index] = line
        return [line for line in lines if line is not None]

    def _json_line(
        self,
        stamp: str,
        group: Group,
        key: Key,
        roots: Mapping[Group, str],
        children: list[Mapping[Group, str]],
    ) -> bytes | None:
        """One record, as `entity_record` writes it, or None when a row holds `null`."""
        fields = ",".join(
            f'"PK{index}":' + _json_text(key_text(value, self.zone))
            for index, value in enumerate(key[:MAX_KEY_COLUMNS], start=1)
        )
        parts = [self._head, stamp, '",', fields, ',"DATA":{', self._labels[0], roots[group], "]"]
        for label, rows in zip(self._labels[1:], children, strict=True):
            parts += [",", label, rows.get(group, ""), "]"]
        parts.append("}}\n")
        line = "".join(parts)
        return None if "null" in line else line.encode()

    def _keyed_batch(self, keys: Sequence[Key]) -> list[bytes]:
        with self._snapshot() as conn:
            return self._keyed_lines(conn, timestamp_text(datetime.now(UTC), UTC), keys)

    def _keyed_lines(self, conn: Connection, stamp: str, keys: Sequence[Key]) -> list[bytes]:
        """The records of the entities named, read through the Python path."""
        roots = self._fetch(conn, self.root, self._among(self.root, keys), by_text=True)
        children = [
            self._fetch(conn, table, self._among(table, keys), by_text=True)
            for table in self.tables[1:]
        ]
        empty: dict[str, list[dict[str, Any]]] = {table.name: [] for table in self.tables}
        lines = []
        for key in keys:
            found = _normal(key, self.root.key_times)
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
        options = self.db.dialect.snapshot_options
        with self.db.engine.connect().execution_options(**options) as conn, conn.begin():
            self.db.dialect.start_snapshot(conn)
            yield conn

    def _in_range(self, query: sa.Select[Any], low: Key | None, high: Key | None) -> sa.Select[Any]:
        """The query limited to roots with a key in [low, high) (None: unbounded)."""
        keys = _tuple(_columns(self.root, self.root.key))
        if low is not None:
            query = query.where(keys >= _values(low))
        if high is not None:
            query = query.where(keys < _values(high))
        return query

    def _select(self, table: _Table) -> sa.Select[Any]:
        """The rows of a table, as the path this reader takes wants them: the root key's
        columns and the row's JSON text (a child's rows joined, one result row per root),
        or the (shaped) columns."""
        if self.fast and table.json is not None:
            keys = _columns(table, table.key)
            if table is not self.root:
                order = _columns(table, table.order)
                return self.db.dialect.grouped_rows(table.json, keys, order)
            text, source = table.json
            return sa.select(*keys, text).select_from(source)
        return sa.select(*table.selected)

    def _between(self, table: _Table, first: Key, last: Key) -> sa.Select[Any]:
        keys = _columns(table, table.key)
        grouped = self.fast and table is not self.root  # rows already in order in their group
        return (
            self._select(table)
            .where(_tuple(keys) >= _values(first), _tuple(keys) <= _values(last))
            .order_by(*(keys if grouped else _columns(table, table.order)))
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
        fetched = self.db.dialect.fetch_all(conn, query)
        # Groups come from the keys as stored (a page goes on from them), before any value
        # is made the record's.
        groups = list(map(table.group_of, fetched))
        times = table.text_times
        if times or table.nullable:
            fetched = [
                self._prepared(values, times) if times or None in values else values
                for values in fetched
            ]
        if table is self.root and not by_text:
            # A root key is unique: each group is one row (a 1-tuple), made all in C.
            return dict(zip(groups, zip(_dicts(table.columns, fetched)), strict=True))
        grouped: dict[Group, list[dict[str, Any]]] = {}
        pairs = zip(groups, fetched, strict=True)
        for group, in_group in itertools.groupby(pairs, operator.itemgetter(0)):
            made = list(_dicts(table.columns, map(operator.itemgetter(1), in_group)))
            named = _normal(_key(group), table.key_times) if by_text else group
            found = grouped.setdefault(named, made)
            if found is not made:  # the query's order did not keep the group together
                found.extend(made)
        return grouped

    def _fetch_json(
        self, conn: Connection, table: _Table, query: sa.Select[Any]
    ) -> dict[Group, str]:
        """The fast path's result rows (root-key columns, then JSON text: a root's row, or
        a child's rows joined), by root key, made in C."""
        width = len(table.key)
        fetched = conn.execute(query).cursor.fetchall()
        groups = map(operator.itemgetter(*range(width)), fetched)
        return dict(zip(groups, map(operator.itemgetter(width), fetched), strict=True))

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


def _dicts(columns: tuple[str, ...], rows: Iterable[Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """Each row as a dict of its columns, made in C."""
    return map(dict, map(zip, itertools.repeat(columns), rows))


def _json_text(text: str) -> str:
    return orjson.dumps(text).decode()


def _normal(key: Key, times: frozenset[int]) -> Key:
    """A key compared as text: a queued key comes back from JSON (where a number may be a
    Decimal, a date-time a string in the server's JSON form) while the same key read from
    its row has the column's own type. Date and date-time values (at `times`) are compared
    in one ISO form."""
    return tuple(_iso(value) if index in times else str(value) for index, value in enumerate(key))


def _iso(value: object) -> str:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).isoformat()
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).isoformat()
    return str(value)


def _is_time(columns: Sequence[Any], name: str) -> bool:
    kind = next(c["type"] for c in columns if c["name"] == name)
    return isinstance(kind, sa.DateTime | sa.Date)


def _tuple(columns: Sequence[sa.ColumnClause[Any]]) -> Any:
    return columns[0] if len(columns) == 1 else sa.tuple_(*columns)


def _values(key: Key) -> Any:
    """A key as bound parameters passed to the driver untouched."""
    params = [sa.bindparam(None, value, type_=sa.types.NullType()) for value in key]
    return params[0] if len(params) == 1 else sa.tuple_(*params)
