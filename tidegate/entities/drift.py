"""Schema drift of entity tables: an entity whose tables changed shape since the last
ongoing run is exported again whole, inside the ongoing stream.

Each ongoing run first compares the shape of every entity with ongoing export on (its
tables' columns, their exported types and NULL-ness, and their keys; capture/shapes.py)
with the one recorded at the run before (`tidegate_meta`, `entity-shape:<entity id>`), or
at the initial export that read the entity, when no ongoing run has recorded one yet. For
an entity that changed it installs the entity's capture again when its key columns
changed (on MariaDB a renamed key column broke it; see docs/schema-changes.md), and
queues every one of its entities, so
that this run and the ones after it write a record of each: in a target, a record
replaces its entity's rows, so every row gets the new shape (a column added with a
default included, which no trigger saw).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.capture import shapes
from tidegate.capture.registry import capture_for
from tidegate.db import Database
from tidegate.entities.catalog import Entity
from tidegate.model import now_us

PREFIX = "entity-shape:"


def follow(db: Database, entities: Mapping[int, Entity]) -> list[str]:
    """Compare, act on what changed, record what was found; the names of the entities
    queued whole."""
    with db.engine.connect() as conn:
        recorded = shapes.recorded(db, conn, PREFIX)
    found = {entity_id: _fingerprints(db, entity) for entity_id, entity in entities.items()}
    changed = [i for i, now in found.items() if recorded.get(i) not in (None, now)]
    if not changed and all(i in recorded for i in found):
        return []
    capture = capture_for(db)
    # READ COMMITTED: no gap locks on tidegate_meta, which the other export kind's run
    # may be writing at the same moment (on MariaDB they deadlocked).
    with db.read_committed() as conn, conn.begin():
        for entity_id in changed:
            entity = entities[entity_id]
            if _keys_of(recorded[entity_id]) != _keys_of(found[entity_id]):
                # Capture names the key columns: installed again for their new names
                # (DDL, which waits for open writers: only when it must).
                for index, table in enumerate(entity.tables):
                    key = entity.key_columns(table)
                    capture.install_entity(conn, entity_id, index, table, key)
            _queue_every_entity(db, conn, entity_id, entity, capture.key_function)
        for entity_id, now in found.items():
            shapes.record(db, conn, PREFIX, entity_id, now)
    return [entities[i].name for i in changed]


def record_unrecorded(db: Database, entities: Sequence[Entity]) -> None:
    """Record the shape of each entity that has none yet, as an initial export is about to
    read it: the one its next ongoing run compares with. (Without it, a column added
    between the initial export and the entity's first ongoing run became that run's
    baseline, and the rows the initial export wrote never got it.)"""
    table = control.entity
    names = [entity.name for entity in entities]
    with db.engine.connect() as conn:
        recorded = shapes.recorded(db, conn, PREFIX)
        rows = control.bind(db, conn).execute(
            sa.select(table.c.entity_id, table.c.name).where(table.c.name.in_(names))
        )
        ids = {row.name: row.entity_id for row in rows}
    by_name = {entity.name: entity for entity in entities}
    missing = {ids[n]: by_name[n] for n in names if n in ids and ids[n] not in recorded}
    if not missing:
        return
    found = {entity_id: _fingerprints(db, entity) for entity_id, entity in missing.items()}
    with db.read_committed() as conn, conn.begin():
        for entity_id, now in found.items():
            shapes.record(db, conn, PREFIX, entity_id, now)


def _fingerprints(db: Database, entity: Entity) -> str:
    """`<shape>:<keys>`: a fingerprint of the tables' shapes, and one of the columns
    capture names (each table's columns holding the root key) with their types (on
    PostgreSQL a session keeps the types it planned the capture function with)."""
    found = [shapes.shape(db, table) for table in entity.tables]
    keys = [
        sorted(shapes.column_types(shape, entity.key_columns(table)).items())
        for shape, table in zip(found, entity.tables, strict=True)
    ]
    return f"{shapes.combined(found)}:{hashlib.sha1(orjson.dumps(keys)).hexdigest()}"


def _keys_of(fingerprints: str) -> str:
    return fingerprints.partition(":")[2]


def _queue_every_entity(
    db: Database, conn: Connection, entity_id: int, entity: Entity, key_function: str
) -> None:
    """Queue every root key, as the entity's capture writes it (the same JSON function)."""
    root = sa.table(entity.root, *[sa.column(c) for c in entity.key], schema=db.schema)
    key = getattr(sa.func, key_function)(*[root.c[c] for c in entity.key])
    queue = control.entity_pending
    rows = sa.select(sa.literal(entity_id), sa.cast(key, sa.Text), sa.literal(now_us()))
    columns = [queue.c.entity_id, queue.c.pk, queue.c.captured_us]
    control.bind(db, conn).execute(queue.insert().from_select(columns, rows.select_from(root)))
