"""The shape of a source table (its columns, their exported types and NULL-ness, and its
key) as a fingerprint, and whether a change of shape can be merged row by row.

Table export records each captured table's shape in `tidegate_shape` (tables/drift.py);
entity export records a fingerprint per entity in `tidegate_meta` under
`entity-shape:<entity id>` (entities/drift.py). Each export run compares them with what it
finds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.db import Database, type_text


@dataclass(frozen=True)
class Shape:
    key: tuple[str, ...]  # the primary key, else the configured key
    columns: tuple[str, ...]
    fingerprint: str
    # {"columns": [[name, portable type, sql type, nullable], ...], "key": [...]}: what the
    # fingerprint is of, recorded so that the next change can be told apart (`migratable`)
    detail: str = ""
    # Columns the database fills itself (a default, generated, identity): added to a table
    # with rows, they hold values no capture saw.
    filled: frozenset[str] = frozenset()
    # A PostgreSQL partitioned table's partitions: one attached or detached moved rows
    # that no trigger saw.
    partitions: tuple[str, ...] = ()


def shape(db: Database, table: str, configured_key: tuple[str, ...] = ()) -> Shape:
    """A table's shape as it is now."""
    reflected = sa.Table(table, sa.MetaData(schema=db.schema), autoload_with=db.engine)
    key = tuple(c.name for c in reflected.primary_key.columns) or configured_key
    columns = [
        (c.name, db.dialect.portable_type(c.type), type_text(db, c.type), bool(c.nullable))
        for c in reflected.columns
    ]
    filled = frozenset(
        c.name
        for c in reflected.columns
        if c.server_default is not None or c.computed is not None or c.identity is not None
    )
    with db.engine.connect() as conn:
        partitions = tuple(db.dialect.partitions(conn, db.qualified(table)))
    return shape_of(columns, key, filled, partitions)


def shape_of(
    columns: Sequence[tuple[str, str, str, bool]],
    key: tuple[str, ...],
    filled: frozenset[str] = frozenset(),
    partitions: tuple[str, ...] = (),
) -> Shape:
    """The shape of columns (name, portable type, source type, NULL-able) and a key; a key
    column counts as NOT NULL, as the export writes it (SQLite reports an INTEGER PRIMARY
    KEY as NULL-able)."""
    listed = [[name, kind, sql, null and name not in key] for name, kind, sql, null in columns]
    document: dict[str, Any] = {"columns": listed, "key": key}
    if partitions:
        document["partitions"] = partitions
    detail = orjson.dumps(document)
    names = tuple(c[0] for c in columns)
    return Shape(key, names, _sha1(detail), detail.decode("utf-8"), filled, partitions)


def repartitioned(before: str, now: Shape) -> bool:
    """Whether a partition was attached or detached since `before` (a `Shape.detail`)."""
    return tuple(orjson.loads(before).get("partitions", ())) != now.partitions


def migratable(before: str, now: Shape) -> bool:
    """Whether rows exported in shape `now` merge row by row into a target table made for
    shape `before` (a recorded `Shape.detail`) once the loader migrates it: the same key,
    no column gone, every column kept holding the same text for every value (a widened
    integer or text type, a NOT NULL dropped), and columns added empty (NULL, no default:
    the rows there already hold NULL in them too). Anything else is exported whole.
    Partitions are not compared (`repartitioned`)."""
    old = orjson.loads(before)
    new: dict[str, Any] = orjson.loads(now.detail)
    if old["key"] != new["key"]:
        return False
    columns = {c[0]: c for c in new["columns"]}
    if any(c[0] not in columns or not _widens(c, columns[c[0]]) for c in old["columns"]):
        return False
    added = set(columns) - {c[0] for c in old["columns"]}
    return all(columns[name][3] and name not in now.filled for name in added)


def column_types(shape: Shape, names: Sequence[str]) -> dict[str, str]:
    """The source's types (`sql_type`) of the columns `names`, as `shape` has them."""
    return sql_types(shape.detail, names)


def sql_types(detail: str, names: Sequence[str]) -> dict[str, str]:
    """The source's types of the columns `names` in a recorded `Shape.detail`."""
    return {c[0]: c[2] for c in orjson.loads(detail)["columns"] if c[0] in names}


_INTEGERS = ("smallint", "integer", "bigint")
# Source types whose values read back the same once widened: no padding (CHAR(n) pads
# to its new length), no rounding (a float, a scale).
_VARYING_TEXT = re.compile(
    r"(N?VARCHAR|CHARACTER VARYING|(TINY|MEDIUM|LONG)?TEXT)(\(\d+\))?( .*)?", re.IGNORECASE
)
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")
_LENGTH = re.compile(r"varchar\((\d+)\)")


def _widens(old: list[Any], new: list[Any]) -> bool:
    """Whether column `new` holds every value of `old` as the same text: NOT NULL may be
    dropped, not added."""
    (_, old_type, old_sql, old_null), (_, new_type, new_sql, new_null) = old, new
    if old_null and not new_null:
        return False
    if old_sql == new_sql and old_type == new_type:
        return True
    if old_type in _INTEGERS and new_type in _INTEGERS:
        return _INTEGERS.index(new_type) >= _INTEGERS.index(old_type)
    if _VARYING_TEXT.fullmatch(old_sql) and _VARYING_TEXT.fullmatch(new_sql):
        return _length(new_type) >= _length(old_type)
    old_numeric, new_numeric = _NUMERIC.fullmatch(old_type), _NUMERIC.fullmatch(new_type)
    if old_numeric and new_numeric:
        (old_p, old_s), (new_p, new_s) = old_numeric.groups(), new_numeric.groups()
        return old_s == new_s and int(new_p) >= int(old_p)
    return False


def _length(portable: str) -> float:
    """The longest text a portable text type holds (`text`: no limit)."""
    match = _LENGTH.fullmatch(portable)
    if match:
        return int(match.group(1))
    return float("inf") if portable == "text" else -1


def combined(shapes: Sequence[Shape]) -> str:
    """One fingerprint of several tables' shapes, in order (an entity's)."""
    return _sha1("".join(s.fingerprint for s in shapes).encode("ascii"))


def recorded(db: Database, conn: Connection, prefix: str) -> dict[int, str]:
    """The fingerprints recorded under `prefix`, by id."""
    meta = control.meta
    rows = control.bind(db, conn).execute(
        sa.select(meta.c.name, meta.c.value).where(meta.c.name.startswith(prefix))
    )
    return {int(name[len(prefix) :]): value for name, value in rows}


def record(db: Database, conn: Connection, prefix: str, ident: int, fingerprint: str) -> None:
    control.set_meta(db, conn, f"{prefix}{ident}", fingerprint)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
