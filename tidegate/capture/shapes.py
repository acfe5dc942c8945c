"""The shape of a source table (its columns, their exported types and NULL-ness, and its
key) as a fingerprint, and the fingerprints recorded in `tidegate_meta` under a prefix
(`shape:<table id>` for table export, `entity-shape:<entity id>` for entity export), which
each export run compares with what it finds (tables/drift.py, entities/drift.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

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


def shape(db: Database, table: str, configured_key: tuple[str, ...] = ()) -> Shape:
    """A table's shape as it is now."""
    reflected = sa.Table(table, sa.MetaData(schema=db.schema), autoload_with=db.engine)
    key = tuple(c.name for c in reflected.primary_key.columns) or configured_key
    columns = [
        [c.name, db.dialect.portable_type(c.type), type_text(db, c.type), bool(c.nullable)]
        for c in reflected.columns
    ]
    names = tuple(c.name for c in reflected.columns)
    return Shape(key, names, _sha1(orjson.dumps({"columns": columns, "key": key})))


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
    meta = control.meta
    conn = control.bind(db, conn)
    name = f"{prefix}{ident}"
    updated = conn.execute(meta.update().where(meta.c.name == name).values(value=fingerprint))
    if not updated.rowcount:
        conn.execute(meta.insert().values(name=name, value=fingerprint))


def forget(db: Database, conn: Connection, prefix: str, ident: int) -> None:
    meta = control.meta
    control.bind(db, conn).execute(meta.delete().where(meta.c.name == f"{prefix}{ident}"))


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
