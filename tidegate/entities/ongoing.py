"""An ongoing entity export run: one current snapshot of every queued entity.

The run claims the committed root keys that capture queued (capture.ticks, queue
ENTITY_KEYS), picks the distinct entities to export (all of them, or as many as
`thread_limit` allows: at least 20% of the queue and never fewer than 100,000), reads each
one's current state (a DELETED record when it is gone), writes the files and, last, the
run's manifest, and then removes exactly the queue entries it exported. Keys queued while
the run ran are still pending and stay for the next run; so do entries beyond the limit.
A run that dies before removing its entries leaves them queued, and the next run exports
them again into a complete run.

A run that loses the `ongoing` lock while it runs is fenced (see `tidegate.lock`): it
writes its manifest and removes queue entries only while it still holds the lock, so it
stops as if it had died there: its entries stay queued for the run that took over.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tidegate import control
from tidegate.capture import claim
from tidegate.capture.ticks import ENTITY_KEYS
from tidegate.db import Database
from tidegate.entities import drift
from tidegate.entities.catalog import Entity
from tidegate.entities.files import FOLDER, WorkerFiles, WrittenFile, remove_unfinished
from tidegate.entities.initial import Progress, files_cap
from tidegate.entities.snapshot import EntityReader
from tidegate.formats.jsonl import manifest_name, run_manifest
from tidegate.formats.naming import EntityFileName
from tidegate.lock import HeldLock
from tidegate.storage import Location

MIN_SHARE = 0.2
MIN_RECORDS = 100_000
_queue = control.entity_queue


@dataclass(frozen=True)
class OngoingSettings:
    threads: int
    records_per_file: int
    thread_limit: int
    timezone: str


@dataclass
class OngoingResult:
    """What an ongoing run wrote, and what it left queued."""

    run: int
    records: int = 0
    deleted: int = 0
    files: list[WrittenFile] = field(default_factory=list)
    records_per_file: int = 0
    raised_from: int | None = None
    limit: int | None = None  # records allowed across all threads, when thread_limit is set
    limit_raised_from: int | None = None
    backlog: int = 0  # entities still queued after the run
    manifest: str = ""
    reshaped: list[str] = field(default_factory=list)  # entities queued whole (drift.py)


def run_limit(thread_limit: int, threads: int, queued: int) -> tuple[int | None, int | None]:
    """(records this run may export, the thread_limit total it was raised from or None).

    `thread_limit` caps what a thread exports, but a run clears at least 20% of the queue
    and never fewer than 100,000 records, so the cap is raised to meet that.
    """
    if thread_limit <= 0:
        return None, None
    asked = thread_limit * threads
    floor = max(math.ceil(queued * MIN_SHARE), min(MIN_RECORDS, queued))
    return (floor, asked) if floor > asked else (asked, None)


def run_ongoing(
    db: Database,
    lock: HeldLock,
    location: Location,
    entities: Sequence[Entity],
    run: int,
    settings: OngoingSettings,
    progress: Progress,
) -> OngoingResult:
    """Export the queued entities once each; the caller holds the `ongoing` job lock.

    Raises:
        LockLost: the lock was lost; the run stopped before its next step.
    """
    remove_unfinished(location, "INC_EXPORT", run)
    result = OngoingResult(run)
    started = datetime.now(UTC)
    by_id = _entity_ids(db, entities)
    result.reshaped = drift.follow(db, by_id)
    claim(db, queue=ENTITY_KEYS)
    queue_size, top = _queue_size(db, set(by_id))
    result.limit, result.limit_raised_from = run_limit(
        settings.thread_limit, settings.threads, queue_size
    )
    chosen = _queued(db, set(by_id), top, result.limit)
    if not chosen:
        return result  # nothing queued: no files, no manifest
    result.records_per_file = files_cap(settings.records_per_file, len(chosen), settings.threads, 1)
    if result.records_per_file != settings.records_per_file:
        result.raised_from = settings.records_per_file
    readers = {
        entity_id: EntityReader(db, entity, ZoneInfo(settings.timezone))
        for entity_id, entity in by_id.items()
    }

    def work(thread: int) -> list[WrittenFile]:
        def name_for(seq: int) -> str:
            return EntityFileName(
                "INC_EXPORT", run, thread, settings.threads, started, seq
            ).format()

        files = WorkerFiles(location, name_for, "", thread, result.records_per_file)
        share = chosen[thread - 1 :: settings.threads]
        for entity_id in sorted({entity_id for entity_id, _pk in share}):
            keys = [tuple(json.loads(pk, parse_float=Decimal)) for e, pk in share if e == entity_id]
            files.write(list(readers[entity_id].records_for(keys)))
            progress(by_id[entity_id].name, len(keys))
        return files.close()

    with ThreadPoolExecutor(settings.threads, thread_name_prefix="tidegate-ongoing") as pool:
        result.files = [
            f for files in pool.map(work, range(1, settings.threads + 1)) for f in files
        ]
    result.records = sum(f.records for f in result.files)
    result.manifest = manifest_name("INC_EXPORT", run)
    lock.confirm(f"writing the manifest of ongoing run {run}")
    # Whole or not at all: its presence is what marks the run complete.
    with location.writing_whole(FOLDER, result.manifest) as handle:
        handle.write(
            run_manifest(
                "INC_EXPORT",
                run,
                started,
                {by_id[e].name: readers[e].definition() for e in {e for e, _pk in chosen}},
                settings.threads,
                result.records_per_file,
                [asdict(f) for f in result.files],
            )
        )
    _remove(db, lock, run, chosen, top)
    result.backlog = queue_size - len(chosen)
    return result


def _entity_ids(db: Database, entities: Sequence[Entity]) -> dict[int, Entity]:
    """Entity id -> entity, for the entities with ongoing export on."""
    table = control.entity
    by_name = {entity.name: entity for entity in entities}
    with db.engine.connect() as raw:
        rows = control.bind(db, raw).execute(
            sa.select(table.c.entity_id, table.c.name).where(table.c.ongoing.is_(True))
        )
        return {row.entity_id: by_name[row.name] for row in rows if row.name in by_name}


Queued = tuple[int, str]
"""A queued entity: (entity id, its root key as the JSON text capture wrote)."""


def _queue_size(db: Database, entity_ids: set[int]) -> tuple[int, int]:
    """(distinct entities queued, highest queue id): entries after that id arrived while
    the run ran, and are not this run's."""
    distinct = (
        sa.select(_queue.c.entity_id, _queue.c.pk)
        .where(_queue.c.entity_id.in_(entity_ids))
        .distinct()
        .subquery()
    )
    with db.engine.connect() as raw:
        conn = control.bind(db, raw)
        count = conn.execute(sa.select(sa.func.count()).select_from(distinct)).scalar()
        top = conn.execute(sa.select(sa.func.max(_queue.c.queue_id))).scalar()
    return int(count or 0), int(top or 0)


def _queued(db: Database, entity_ids: set[int], top: int, limit: int | None) -> list[Queued]:
    """The distinct queued entities, in the order they were first queued, at most `limit`.

    The database groups the entries, so an entity queued a thousand times costs one row.
    """
    first = sa.func.min(_queue.c.queue_id).label("first")
    query = (
        sa.select(_queue.c.entity_id, _queue.c.pk, first)
        .where(_queue.c.entity_id.in_(entity_ids), _queue.c.queue_id <= top)
        .group_by(_queue.c.entity_id, _queue.c.pk)
        .order_by(first)
    )
    if limit is not None:
        query = query.limit(limit)
    with db.engine.connect() as raw:
        return [(row.entity_id, row.pk) for row in control.bind(db, raw).execute(query)]


def _remove(db: Database, lock: HeldLock, run: int, exported: Sequence[Queued], top: int) -> None:
    """Delete the queue entries of the exported entities, up to `top` (not later ones), in
    one transaction under the job's lock."""
    by_entity: dict[int, list[str]] = {}
    for entity_id, pk in exported:
        by_entity.setdefault(entity_id, []).append(pk)
    with lock.transaction(f"removing the queue entries ongoing run {run} exported") as raw:
        conn = control.bind(db, raw)
        for entity_id, keys in by_entity.items():
            for start in range(0, len(keys), 1000):
                conn.execute(
                    _queue.delete().where(
                        _queue.c.queue_id <= top,
                        _queue.c.entity_id == entity_id,
                        _queue.c.pk.in_(keys[start : start + 1000]),
                    )
                )
