"""Entity records written by the sqlite3 shell: the initial export's fast path on SQLite.

The shell runs one script per key range: batches of `BATCH_ROOTS` roots, each in a
transaction of its own (a reader never holds up writers for long), each record built in
SQL with `json_object` and a correlated `json_group_array` per child table, then a last
statement without a limit for roots added since the count. Each batch pages on from the
last key of the one before, kept in a TEMP table (the source is opened read-only).
Values are shaped as the entity format writes them:

| value | written as |
|---|---|
| NULL | `""` |
| integer | itself |
| text | `rtrim` |
| float | `quote()`: 15 digits when they read back the same, else 20 (exact either way) |
| BLOB | lowercase hex |
| date-time column, usual text forms | `YYYY-MM-DDTHH:MM:SS.ffffffZ` (source zone UTC only) |

Anything else (an infinite float, a date-time in another form, a value of a storage class
the column's type cannot carry) is written `null`, and the reader writes that entity again
through its Python path (which refuses the last kind). The shell's `'now'` is fixed for a
statement, so every record of a batch carries its snapshot's time (to the millisecond).

The shell formats in C on a core of its own; this process only reads lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tidegate.formats.jsonl import MAX_KEY_COLUMNS
from tidegate.sources.sqlite import storage_classes

# json_object takes at most 127 arguments (SQLite's default SQLITE_MAX_FUNCTION_ARG).
MAX_COLUMNS = 63
_LARGEST = 1.7976931348623157e308
# The usual text forms of a date-time (what Python's sqlite3 module writes).
_SECONDS = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
_MICROSECONDS = _SECONDS + ".[0-9][0-9][0-9][0-9][0-9][0-9]"
_PAGE = "tidegate_page"


@dataclass(frozen=True)
class ShellTable:
    """What the script needs of an entity table: its columns in order, which hold
    date-times, the root-key columns and the order of its rows."""

    clause: sa.TableClause
    columns: tuple[str, ...]
    times: frozenset[str]
    key: tuple[str, ...]
    order: tuple[str, ...]
    portable: Mapping[str, str]  # the type each column is exported as


def usable(tables: Sequence[ShellTable]) -> bool:
    """Whether the shell can write this entity: every table narrow enough for
    `json_object`, and every child's primary key starting with the root key (so its
    index serves the per-root lookup)."""
    return all(len(t.columns) <= MAX_COLUMNS for t in tables) and all(
        t.order[: len(t.key)] == t.key for t in tables[1:]
    )


def script(
    entity: str,
    tables: Sequence[ShellTable],
    low: tuple[Any, ...] | None,
    high: tuple[Any, ...] | None,
    batches: int,
    batch_roots: int,
    render: Any,
) -> str:
    """The shell script exporting the roots in [low, high) (None: unbounded): `batches`
    limited batches, then the rest. `render` turns a statement into SQL text."""
    root = tables[0]
    keys = [root.clause.c[name] for name in root.key]
    page = sa.table(_PAGE, *[sa.column(f"k{i}") for i in range(len(keys))])
    bounded = [] if high is None else [_row(keys) < _row(_literals(high))]
    # A subquery, not a join: its value is known before the scan, so the key's index seeks
    # straight to it instead of walking from the first root.
    after_page = _row(keys) > sa.select(*page.c).scalar_subquery()
    first = bounded + ([] if low is None else [_row(keys) >= _row(_literals(low))])
    record = _record(entity, tables)

    def select_batch(where: list[Any], *, limit: bool = True) -> sa.Select[Any]:
        query = sa.select(record).where(*where).order_by(*keys)
        return query.limit(batch_roots) if limit else query

    def last_key(where: list[Any]) -> sa.Select[Any]:
        batch = sa.select(*keys).where(*where).order_by(*keys).limit(batch_roots).subquery()
        return sa.select(*batch.c).order_by(*[c.desc() for c in batch.c]).limit(1)

    statements = [
        f"CREATE TEMP TABLE {_PAGE} ({', '.join(c.name for c in page.c)})",
        "BEGIN",
        render(select_batch(first)),
        render(sa.insert(page).from_select(list(page.c), last_key(first))),
        "COMMIT",
    ]
    following = [*bounded, after_page]
    next_batch = [
        "BEGIN",
        render(select_batch(following)),
        render(
            sa.update(page).values(
                {c.name: v for c, v in zip(page.c, _scalars(last_key(following)), strict=True)}
            )
        ),
        "COMMIT",
    ]
    statements += next_batch * batches  # the same text each time: rendered once
    statements += [
        "BEGIN",
        render(select_batch(following, limit=False)),
        "COMMIT",
    ]
    return ";\n".join(statements) + ";\n"


def _record(entity: str, tables: Sequence[ShellTable]) -> sa.ColumnElement[Any]:
    root = tables[0]
    stamp = sa.func.strftime("%Y-%m-%dT%H:%M:%f", "now") + "000Z"
    fields: list[Any] = [_text("OBJ"), _text(entity), _text("TIMESTAMP"), stamp]
    for index, name in enumerate(root.key[:MAX_KEY_COLUMNS], start=1):
        fields += [_text(f"PK{index}"), _key_text(root.clause.c[name])]
    data: list[Any] = [_text(root.clause.name), sa.func.json_array(_row_json(root, root.clause))]
    for child in tables[1:]:
        data += [_text(child.clause.name), _children(root, child)]
    return sa.func.json_object(*fields, _text("DATA"), sa.func.json_object(*data))


def _children(root: ShellTable, child: ShellTable) -> sa.ScalarSelect[Any]:
    """The child's rows of the current root as a JSON array, in the child's key order (an
    aggregate over an ordered subquery keeps its order)."""
    links = [
        child.clause.c[c] == root.clause.c[r] for c, r in zip(child.key, root.key, strict=True)
    ]
    ordered = (
        sa.select(*[child.clause.c[name] for name in child.columns])
        .where(*links)
        .order_by(*[child.clause.c[name] for name in child.order])
        .correlate(root.clause)
        .subquery()
    )
    rows = sa.func.json_group_array(_row_json(child, ordered))
    return sa.select(rows).select_from(ordered).scalar_subquery()


def _row_json(table: ShellTable, source: sa.FromClause) -> sa.ColumnElement[Any]:
    arguments: list[Any] = []
    for name in table.columns:
        column = source.c[name]
        classes = storage_classes(table.portable[name])
        written = _time(column, classes) if name in table.times else _value(column, classes)
        arguments += [_text(name), written]
    return sa.func.json_object(*arguments)


def _value(column: sa.ColumnElement[Any], classes: Sequence[str]) -> sa.ColumnElement[Any]:
    """The value as the record writes it; NULL (so `null`: the entity is read again by
    the Python path, which refuses it) when its storage class is none of `classes`."""
    # quote() prints 15 digits when they read back the same, else 20; "1.0e+20" is
    # written "1e+20", as Python writes it.
    printed = sa.func.replace(sa.func.quote(column), ".0e", "e")
    finite = sa.case((column.between(-_LARGEST, _LARGEST), sa.func.json(printed)))
    written = {
        "integer": column,
        "text": sa.func.rtrim(column),
        "real": finite,
        "blob": sa.func.lower(sa.func.hex(column)),
    }
    return sa.case(
        {"null": "", **{klass: written[klass] for klass in classes}},
        value=sa.func.typeof(column),  # CASE x WHEN …: typeof runs once
    )


def _time(column: sa.ColumnElement[Any], classes: Sequence[str]) -> sa.ColumnElement[Any]:
    iso = sa.func.substr(column, 1, 10) + "T" + sa.func.substr(column, 12)
    is_text = sa.func.typeof(column) == "text"
    return sa.case(
        (column.is_(None), ""),
        (sa.and_(is_text, column.op("GLOB")(_SECONDS)), iso + ".000000Z"),
        (sa.and_(is_text, column.op("GLOB")(_MICROSECONDS)), iso + "Z"),
        (is_text, sa.null()),
        else_=_value(column, classes),
    )


def _key_text(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A root-key value as the PK fields hold it: a string."""
    return sa.case(
        {"integer": sa.cast(column, sa.Text), "text": sa.func.rtrim(column)},
        value=sa.func.typeof(column),
    )


def _text(value: str) -> sa.ColumnElement[Any]:
    return sa.literal(value, sa.Text)


def _literals(key: tuple[Any, ...]) -> list[sa.ColumnElement[Any]]:
    return [sa.literal(value) for value in key]


def _row(elements: Sequence[Any]) -> Any:
    return elements[0] if len(elements) == 1 else sa.tuple_(*elements)


def _scalars(query: sa.Select[Any]) -> list[sa.ScalarSelect[Any]]:
    """Each column of a one-row query as a scalar subquery (NULL when it has no row)."""
    inner = query.subquery()
    return [sa.select(column).scalar_subquery() for column in inner.c]
