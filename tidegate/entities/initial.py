"""An initial entity export run: every entity asked for, whole, split across workers.

Each entity's root keys are split into `threads` ranges of about equal size; each range is
read by a worker thread with connections of its own (entities.snapshot) into files of its
own (entities.files). The run's manifest is written last. Entity status goes
`not started` → `in progress` (with the run number) → `complete`; an entity left
`in progress` by a run that died is exported again by the next run.

A run that loses the `initial` lock while it runs is fenced (see `tidegate.lock`): it sets
an entity's status and writes its manifest only while it still holds the lock, so it stops
as if it had died there, and leaves no second complete run beside the one that took over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tidegate import control
from tidegate.db import Database
from tidegate.entities import drift
from tidegate.entities.catalog import Entity
from tidegate.entities.files import FOLDER, WorkerFiles, WrittenFile, remove_unfinished
from tidegate.entities.snapshot import EntityReader
from tidegate.formats.jsonl import manifest_name, run_manifest
from tidegate.formats.naming import EntityFileName
from tidegate.lock import HeldLock
from tidegate.model import now_us
from tidegate.storage import Location

MAX_FILES = 500
"""A run writes at most about this many files: records_per_file is raised to keep it so."""

Progress = Callable[[str, int], None]
"""Told each batch of records written: (entity, records)."""
Total = Callable[[int], None]
"""Told once, before any record, how many entities the run will write."""


@dataclass(frozen=True)
class InitialSettings:
    threads: int
    records_per_file: int
    prefix: str
    timezone: str


@dataclass
class InitialResult:
    """What an initial run wrote."""

    run: int
    entities: list[str] = field(default_factory=list)
    files: list[WrittenFile] = field(default_factory=list)
    records_per_file: int = 0
    raised_from: int | None = None  # records_per_file asked for, when it had to be raised
    manifest: str = ""

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)


def files_cap(records_per_file: int, total: int, threads: int, entities: int) -> int:
    """`records_per_file`, raised so that a run of `total` records writes at most about
    MAX_FILES files (0, one file per thread, is never raised)."""
    if records_per_file <= 0:
        return 0
    room = max(MAX_FILES - threads * entities, 1)  # each thread's last file may be short
    return max(records_per_file, math.ceil(total / room))


def run_initial(
    db: Database,
    lock: HeldLock,
    location: Location,
    entities: Sequence[Entity],
    run: int,
    settings: InitialSettings,
    progress: Progress,
    total_known: Total = lambda _total: None,
) -> InitialResult:
    """Export every entity given, whole; the caller holds the `initial` job lock.

    Raises:
        LockLost: the lock was lost; the run stopped before its next step.
    """
    remove_unfinished(location, "INIT_EXPORT", run)
    drift.record_unrecorded(db, entities)
    result = InitialResult(run)
    # To the millisecond: the sqlite3 shell's record times have no finer grain, and every
    # record's TIMESTAMP must be at least the run's start (a loader relies on it).
    now = datetime.now(UTC)
    started = now.replace(microsecond=now.microsecond // 1000 * 1000)
    readers = {e.name: EntityReader(db, e, ZoneInfo(settings.timezone)) for e in entities}
    total = sum(reader.count() for reader in readers.values())
    total_known(total)
    result.records_per_file = files_cap(
        settings.records_per_file, total, settings.threads, len(entities)
    )
    if result.records_per_file != settings.records_per_file:
        result.raised_from = settings.records_per_file
    for entity in entities:
        _set_status(db, lock, [entity.name], "in progress", run)
        result.files += _export_entity(
            location,
            readers[entity.name],
            entity,
            run,
            started,
            settings,
            result.records_per_file,
            progress,
        )
        result.entities.append(entity.name)
    result.manifest = manifest_name("INIT_EXPORT", run)
    lock.confirm(f"writing the manifest of initial run {run}")
    # Whole or not at all: its presence is what marks the run complete.
    with location.writing_whole(FOLDER, result.manifest) as handle:
        handle.write(
            run_manifest(
                "INIT_EXPORT",
                run,
                started,
                {name: readers[name].definition() for name in result.entities},
                settings.threads,
                result.records_per_file,
                [asdict(f) for f in result.files],
            )
        )
    _set_status(db, lock, result.entities, "complete", run)
    return result


def _export_entity(
    location: Location,
    reader: EntityReader,
    entity: Entity,
    run: int,
    started: datetime,
    settings: InitialSettings,
    records_per_file: int,
    progress: Progress,
) -> list[WrittenFile]:
    bounds = reader.bounds(settings.threads)
    subject = EntityFileName.initial_subject(entity.name, settings.prefix)

    def work(thread: int) -> list[WrittenFile]:
        def name_for(seq: int) -> str:
            return EntityFileName(
                "INIT_EXPORT", run, thread, settings.threads, started, seq, subject
            ).format()

        files = WorkerFiles(location, name_for, entity.name, thread, records_per_file)
        # Fewer key ranges than threads (few entities): the other threads write an empty file.
        if thread < len(bounds):
            for lines in reader.record_batches(bounds[thread - 1], bounds[thread]):
                files.write(lines)
                progress(entity.name, len(lines))
        return files.close()

    with ThreadPoolExecutor(settings.threads, thread_name_prefix="tidegate-initial") as pool:
        per_thread = list(pool.map(work, range(1, settings.threads + 1)))
    return [written for files in per_thread for written in files]


def _set_status(db: Database, lock: HeldLock, names: Sequence[str], status: str, run: int) -> None:
    """Set the initial status of entities, in one transaction under the job's lock."""
    entity = control.entity
    with lock.transaction(f"marking the initial export of {', '.join(names)} {status}") as raw:
        control.bind(db, raw).execute(
            entity.update()
            .where(entity.c.name.in_(names))
            .values(initial_status=status, initial_run=run, updated_us=now_us())
        )


def pending_entities(db: Database, known: Sequence[Entity]) -> list[Entity]:
    """Enabled, eligible entities whose initial export has not completed."""
    entity = control.entity
    with db.engine.connect() as raw:
        names = set(
            control.bind(db, raw)
            .execute(
                sa.select(entity.c.name).where(
                    entity.c.enabled.is_(True), entity.c.initial_status != "complete"
                )
            )
            .scalars()
        )
    return [e for e in known if e.name in names and e.eligible]
