"""Entity export control records: enabled, ongoing, initial status; and ongoing capture.

Each entity ever enabled has a row in tidegate_entity. Enabling ongoing export installs
triggers on every table of the entity that queue the entity's root key in
tidegate_entity_pending; disabling it removes them and drops the entity's queued keys.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.capture import capture_for
from tidegate.db import Database, database_error
from tidegate.entities.catalog import Entity
from tidegate.errors import ConfigError, EntityRefused
from tidegate.model import now_us

InitialStatus = Literal["not started", "in progress", "complete"]

_entity = control.entity


@dataclass(frozen=True)
class EntityStatus:
    """An entity with its control record and queue depth."""

    entity: Entity
    entity_id: int | None
    enabled: bool
    ongoing: bool
    initial_status: InitialStatus
    initial_run: int | None
    queue_depth: int


def resolve(names: Sequence[str], entities: Sequence[Entity]) -> list[Entity]:
    """The entities named, in the order given.

    Raises:
        ConfigError: a name is unknown; the message names it and the nearest entity.
    """
    by_name = {entity.name: entity for entity in entities}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(by_name), n=1)
        hint = (
            f"did you mean {near[0]}?"
            if near
            else f"known entities: {', '.join(sorted(by_name)) or 'none'}"
        )
        raise ConfigError(
            f"unknown entit{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}", hint
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def statuses(db: Database, entities: Iterable[Entity]) -> list[EntityStatus]:
    """Every entity with its control record (defaults where it has none) and queue depth."""
    with db.engine.connect() as raw:
        conn = control.bind(db, raw)
        records = {row.name: row for row in conn.execute(sa.select(_entity))}
        depth = _queue_depths(conn)
    result = []
    for entity in entities:
        row = records.get(entity.name)
        result.append(
            EntityStatus(
                entity=entity,
                entity_id=row.entity_id if row else None,
                enabled=bool(row.enabled) if row else False,
                ongoing=bool(row.ongoing) if row else False,
                initial_status=row.initial_status if row else "not started",
                initial_run=row.initial_run if row else None,
                queue_depth=depth.get(row.entity_id, 0) if row else 0,
            )
        )
    return result


def _queue_depths(conn: Connection) -> dict[int, int]:
    """Queued root keys per entity id, claimed or not, not yet exported."""
    depths: dict[int, int] = {}
    for table in (control.entity_pending, control.entity_queue):
        query = sa.select(table.c.entity_id, sa.func.count()).group_by(table.c.entity_id)
        for entity_id, count in conn.execute(query):
            depths[entity_id] = depths.get(entity_id, 0) + count
    return depths


def enable(db: Database, entities: Sequence[Entity], *, ongoing: bool) -> None:
    """Enable entities for export, and with `ongoing` install their capture.

    Raises:
        EntityRefused: an entity is not generalized or cannot be exported; nothing changes.
    """
    for entity in entities:
        if not entity.eligible:
            raise EntityRefused(
                entity.refusal(), "enable generalized entities only; see `tidegate entities list`"
            )
    capture = capture_for(db)
    try:
        with db.begin(write=True) as raw:
            conn = control.bind(db, raw)
            for entity in entities:
                entity_id = _record(conn, entity)
                values: dict[str, object] = {
                    "enabled": True,
                    "updated_us": now_us(),
                    "tables": json.dumps(list(entity.tables)),
                }
                if ongoing:
                    values["ongoing"] = True
                    for index, table in enumerate(entity.tables):
                        capture.install_entity(
                            conn, entity_id, index, table, entity.key_columns(table)
                        )
                conn.execute(
                    _entity.update().where(_entity.c.entity_id == entity_id).values(values)
                )
    except exc.DBAPIError as error:
        raise database_error(db, error, "installing entity capture") from None


def disable(db: Database, entities: Sequence[Entity], *, ongoing_only: bool) -> None:
    """Disable ongoing capture (and, unless `ongoing_only`, export) of entities."""
    capture = capture_for(db)
    try:
        with db.begin(write=True) as raw:
            conn = control.bind(db, raw)
            for entity in entities:
                row = conn.execute(sa.select(_entity).where(_entity.c.name == entity.name)).first()
                if row is None:
                    continue
                for index, table in enumerate(json.loads(row.tables)):
                    capture.remove_entity(conn, row.entity_id, index, table)
                # Nothing will export what is still queued for it.
                _drop_pending(conn, row.entity_id)
                values: dict[str, object] = {"ongoing": False, "updated_us": now_us()}
                if not ongoing_only:
                    values["enabled"] = False
                conn.execute(
                    _entity.update().where(_entity.c.entity_id == row.entity_id).values(values)
                )
    except exc.DBAPIError as error:
        raise database_error(db, error, "removing entity capture") from None


def _drop_pending(conn: Connection, entity_id: int) -> None:
    """Delete an entity's queued keys by their ids, found by a plain read first: a DELETE
    that searched the queue itself would, on MariaDB, lock every row it scanned and so wait
    for every open transaction that queued a key of any entity (its rows are uncommitted).
    The entity's own writers are done: removing its triggers waited for them."""
    pending = control.entity_pending
    ids = (
        conn.execute(sa.select(pending.c.queue_id).where(pending.c.entity_id == entity_id))
        .scalars()
        .all()
    )
    for start in range(0, len(ids), 1000):
        conn.execute(pending.delete().where(pending.c.queue_id.in_(ids[start : start + 1000])))


def reset(db: Database, entities: Sequence[Entity]) -> None:
    """Mark the initial export of entities as not started, so that it runs again."""
    with db.begin(write=True) as raw:
        conn = control.bind(db, raw)
        for entity in entities:
            _record(conn, entity)
            conn.execute(
                _entity.update()
                .where(_entity.c.name == entity.name)
                .values(initial_status="not started", initial_run=None, updated_us=now_us())
            )


def ensure(db: Database, entities: Sequence[Entity]) -> None:
    """Give entities a control record (disabled, not started) where they have none."""
    with db.begin(write=True) as raw:
        conn = control.bind(db, raw)
        for entity in entities:
            _record(conn, entity)


def _record(conn: Connection, entity: Entity) -> int:
    """The entity's id, creating its control record (disabled) when it has none."""
    found = conn.execute(
        sa.select(_entity.c.entity_id).where(_entity.c.name == entity.name)
    ).scalar()
    if found is not None:
        return int(found)
    entity_id = int(conn.execute(sa.select(sa.func.max(_entity.c.entity_id))).scalar() or 0) + 1
    conn.execute(
        _entity.insert().values(
            entity_id=entity_id,
            name=entity.name,
            enabled=False,
            ongoing=False,
            initial_status="not started",
            initial_run=None,
            tables=json.dumps(list(entity.tables)),
            updated_us=now_us(),
        )
    )
    return entity_id
