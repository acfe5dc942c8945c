"""An ongoing entity export run: one current snapshot of every queued entity.

The run claims the committed root keys that capture queued (capture.ticks, queue
ENTITY_KEYS), picks the distinct entities to export (all of them, or as many as
`thread_limit` allows: at least 20% of the queue and never fewer than 100,000), reads each
one's current state (a DELETED record when it is gone), writes the files and, last, the
run's manifest, and then removes exactly the queue entries it exported. Keys queued while
the run ran are still pending and stay for the next run; so do entries beyond the limit.
A run that dies before removing its entries leaves them queued, and the next run exports
them again into a complete run.
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
from tidegate.entities.catalog import Entity
from tidegate.entities.files import FOLDER, WorkerFiles, WrittenFile
from tidegate.entities.initial import Progress, files_cap
from tidegate.entities.snapshot import EntityReader, Key
from tidegate.formats.jsonl import manifest_name, run_manifest
from tidegate.formats.naming import EntityFileName
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
    location: Location,
    entities: Sequence[Entity],
    run: int,
    settings: OngoingSettings,
    progress: Progress,
) -> OngoingResult:
    """Export the queued entities once each; the caller holds the `ongoing` job lock."""
    result = OngoingResult(run)
    started = datetime.now(UTC)
    claim(db, queue=ENTITY_KEYS)
    by_id = _entity_ids(db, entities)
    queued, top = _queued(db, set(by_id))
    result.limit, result.limit_raised_from = run_limit(
        settings.thread_limit, settings.threads, len(queued)
    )
    chosen = queued if result.limit is None else queued[: result.limit]
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
        for entity_id in sorted({entity_id for entity_id, _key in share}):
            keys = [key for e, key in share if e == entity_id]
            for line in readers[entity_id].records_for(keys):
                files.write(line)
            progress(by_id[entity_id].name, len(keys))
        return files.close()

    with ThreadPoolExecutor(settings.threads, thread_name_prefix="tidegate-ongoing") as pool:
        result.files = [
            f for files in pool.map(work, range(1, settings.threads + 1)) for f in files
        ]
    result.records = sum(f.records for f in result.files)
    result.manifest = manifest_name("INC_EXPORT", run)
    with location.writing(FOLDER, result.manifest) as handle:
        handle.write(
            run_manifest(
                "INC_EXPORT",
                run,
                started,
                sorted(by_id[e].name for e in {e for e, _k in chosen}),
                settings.threads,
                result.records_per_file,
                [asdict(f) for f in result.files],
            )
        )
    _remove(db, chosen, top)
    result.backlog = len(queued) - len(chosen)
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


def _queued(db: Database, entity_ids: set[int]) -> tuple[list[tuple[int, Key]], int]:
    """The distinct queued entities in the order they were first queued, and the highest
    queue id seen (entries after it arrived later and are not this run's)."""
    seen: dict[tuple[int, str], tuple[int, Key]] = {}
    top = 0
    with db.engine.connect() as raw:
        rows = control.bind(db, raw).execute(
            sa.select(_queue.c.queue_id, _queue.c.entity_id, _queue.c.pk).order_by(
                _queue.c.queue_id
            )
        )
        for queue_id, entity_id, pk in rows:
            top = max(top, queue_id)
            if entity_id in entity_ids:
                key = tuple(json.loads(pk, parse_float=Decimal))
                seen.setdefault((entity_id, pk.replace(" ", "")), (entity_id, key))
    return list(seen.values()), top


def _remove(db: Database, exported: Sequence[tuple[int, Key]], top: int) -> None:
    """Delete the queue entries of the exported entities, up to `top` (not later ones)."""
    by_entity: dict[int, set[str]] = {}
    for entity_id, key in exported:
        by_entity.setdefault(entity_id, set()).add(_text(key))
    with db.begin(write=True) as raw:
        conn = control.bind(db, raw)
        rows = conn.execute(
            sa.select(_queue.c.queue_id, _queue.c.entity_id, _queue.c.pk).where(
                _queue.c.queue_id <= top
            )
        ).all()
        done = [
            queue_id
            for queue_id, entity_id, pk in rows
            if _text(tuple(json.loads(pk, parse_float=Decimal))) in by_entity.get(entity_id, set())
        ]
        for start in range(0, len(done), 1000):
            conn.execute(_queue.delete().where(_queue.c.queue_id.in_(done[start : start + 1000])))


def _text(key: Key) -> str:
    return json.dumps([str(value) for value in key])
