"""`tidegate load`: every complete export not yet applied, in order, each exactly once.

Order: table-export folders in chain order, then entity runs (initial runs, then ongoing
runs, each by run number; within a run, the manifest's file order). Before an export is
applied it is verified whole (verify.py); then it is applied in one target transaction
that also records it in `tidegate_applied`, so a load killed at any point is simply run
again: an export is in the target entirely, with its record, or not at all.

Refused, naming the file, with the target left as it was: anything verify finds wrong
with an export about to be applied, and a table-export folder whose `hwm-from` does not
continue the chain the target holds (an export is missing). A folder still being written
(no `.extracted.xml` yet) is where loading stops, without error, if no complete folder
follows it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import Literal

import sqlalchemy as sa

from tidegate.errors import LoadError
from tidegate.formats.naming import ExportName
from tidegate.formats.tableschema import TableSchema
from tidegate.load.archive import ExportArchive
from tidegate.load.entityrun import apply_run
from tidegate.load.inventory import (
    ENTITY_FOLDER,
    EntityRun,
    Inventory,
    Problem,
    TableFolder,
    require_exports,
    take_inventory,
)
from tidegate.load.tablefolder import apply_folder
from tidegate.load.target import Target
from tidegate.load.verify import check_entity_run, check_table_folder
from tidegate.model import RunRecord, RunStatus
from tidegate.storage import Location

log = logging.getLogger(__name__)

Progress = Callable[["LoadStep"], None]
LoadKind = Literal["tables", "entities"]


@dataclass(frozen=True)
class LoadStep:
    """Where a load stands, for a progress display: what it is doing, and the rows and
    records (table rows written or deleted, entity records) applied of all it will apply."""

    doing: str
    done: int = 0
    total: int = 0


@dataclass
class LoadResult:
    """What a load applied."""

    tables: list[str] = field(default_factory=list)  # folders applied, in order
    runs: list[str] = field(default_factory=list)  # entity runs applied, in order
    rows: int = 0  # table rows written or deleted
    records: int = 0  # entity records applied (older ones skipped)
    waiting: str = ""  # a folder still being written, where loading stopped


def load(
    location: Location,
    target: Target,
    zone: tzinfo,
    progress: Progress,
    only: LoadKind | None = None,
    keep: timedelta = timedelta(days=7),
) -> LoadResult:
    """Apply what the location holds and the target has not applied; `only` one kind of
    export (table exports, or entity runs). Recorded in the target's run history (job
    `load`, kept for `keep`) once there is an export to consider: failures with their
    message."""
    with target.exclusive():
        inventory = take_inventory(location)
        require_exports(location, inventory)
        result = LoadResult()
        with recorded(target, keep, result):
            _load(location, inventory, target, zone, progress, only, result)
        return result


@contextlib.contextmanager
def recorded(history: Target, keep: timedelta, result: LoadResult) -> Iterator[None]:
    """A load recorded in `history` (job `load`, kept for `keep`): its end, with what
    `result` counts, or its failure with the message."""
    run = history.start_run(keep)
    try:
        yield
    except BaseException as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        _finish_run(history, run, "failed", result, message)
        raise
    _finish_run(history, run, "succeeded", result)


def _finish_run(
    target: Target, run: RunRecord, status: RunStatus, result: LoadResult, error: str = ""
) -> None:
    """Record the end of the load; a target gone meanwhile leaves it `running` (the next
    load marks it `abandoned`), and the load's own error is the one reported."""
    exports = len(result.tables) + len(result.runs)
    try:
        target.finish_run(run, status, exports, result.rows + result.records, error)
    except sa.exc.DBAPIError:
        log.warning("load run %d: its end could not be recorded", run.run_number)


def _load(
    location: Location,
    inventory: Inventory,
    target: Target,
    zone: tzinfo,
    progress: Progress,
    only: LoadKind | None,
    result: LoadResult,
) -> None:
    refuse([problem for problem in inventory.problems if problem.serious])
    applied = target.applied()
    folders = [] if only == "entities" else pending_folders(inventory.tables, applied, result)
    runs = [] if only == "tables" else [r for r in inventory.runs if r.label not in applied]
    sizes = {f.folder: folder_size(f) for f in folders} | {r.label: run_size(r) for r in runs}
    total, done = sum(sizes.values()), 0

    def step(doing: str) -> None:
        progress(LoadStep(doing, done, total))

    # Everything to apply is checked first (a zip against its .sha1, its members against
    # its manifest; entity files whole): a damaged export anywhere leaves the target as it
    # was. Members' contents are checked as they are applied, each export in its own
    # transaction.
    for folder in folders:
        step(f"verifying {folder.folder}")
        refuse(check_table_folder(location, folder, deep=False))
    for run in runs:
        step(f"verifying {run.label}")
        refuse(check_entity_run(location, run))
    for folder in folders:
        step(f"loading {folder.folder}")
        started = time.monotonic()
        rows = _apply_folder(location, target, folder, zone)
        log_applied(folder.folder, "tables", rows, started)
        result.rows += rows
        result.tables.append(folder.folder)
        done += sizes[folder.folder]
    for run in runs:
        step(f"loading {run.label}")
        started = time.monotonic()
        records = _apply_run(location, target, run, zone)
        log_applied(run.label, "entities", records, started)
        result.records += records
        result.runs.append(run.label)
        done += sizes[run.label]
    step("loaded")


def log_applied(export: str, kind: str, count: int, started: float) -> None:
    seconds = round(time.monotonic() - started, 3)
    counted = "rows" if kind == "tables" else "records"
    fields = {"export": export, "kind": kind, counted: count, "seconds": seconds}
    log.info("applied %s", export, extra=fields)


def folder_size(folder: TableFolder) -> int:
    """Rows written and deleted by a table export (its manifest's counts)."""
    assert folder.manifest is not None
    return sum(entry.rows + entry.deleted for entry in folder.manifest.tables)


def run_size(run: EntityRun) -> int:
    return sum(file.records for file in run.manifest.files)


def refuse(problems: list[Problem]) -> None:
    if problems:
        raise LoadError(str(problems[0]), "the export was altered or cut short: export it again")


def pending_folders(
    folders: list[TableFolder], applied: dict[str, tuple[str, int]], result: LoadResult
) -> list[TableFolder]:
    """The folders to apply, in order, their chain checked against the target's.

    Where the chain stands is the target's own record (the table export it applied last),
    not what the location still holds: applied folders may have been archived."""
    last = last_applied_folder(applied)
    position = last[1] if last else None
    pending = [f for f in folders if f.folder not in applied and (not last or f.name > last[0])]
    chosen = []
    for index, folder in enumerate(pending):
        if folder.manifest is None:
            if any(f.manifest is not None for f in pending[index + 1 :]):
                raise LoadError(
                    f"{folder.folder}: has no .extracted.xml, and later exports follow it",
                    "the export is incomplete or was removed: export it again, or restart",
                )
            result.waiting = folder.folder
            break
        if position is None and folder.manifest.kind != "snapshot":
            raise LoadError(
                f"{folder.folder}: the target holds no export yet, and this one is not a "
                "snapshot: the exports before it are missing",
                "load from a location that holds the stream's first export",
            )
        if position is not None and folder.manifest.hwm_from.audit_key != position:
            raise LoadError(
                f"{folder.folder}: hwm-from {folder.manifest.hwm_from.audit_key} does not "
                f"follow the last export loaded (hwm-to {position}): an export is missing",
                "find the missing export folder, or load into a new target",
            )
        position = folder.manifest.hwm_to.audit_key
        chosen.append(folder)
    return chosen


def last_applied_folder(applied: dict[str, tuple[str, int]]) -> tuple[ExportName, int] | None:
    """The table export the target applied last (the highest hwm-to) and its hwm-to."""
    tables = [(position, name) for name, (kind, position) in applied.items() if kind == "tables"]
    if not tables:
        return None
    position, name = max(tables)
    return ExportName.parse(name), position


def _apply_folder(location: Location, target: Target, folder: TableFolder, zone: tzinfo) -> int:
    assert folder.manifest is not None
    name = folder.name
    with location.reading(folder.folder, name.zip_name) as handle:
        archive = ExportArchive(handle, f"{folder.folder}/{name.zip_name}", folder.manifest)
        try:
            whole = {entry.name for entry in folder.manifest.tables if entry.whole}
            tables = target.prepare(_prepared(archive), folder.folder, whole)
            with target.transaction() as conn:
                rows = apply_folder(conn, target.dialect, archive, folder.manifest, tables)
                target.record_applied(
                    conn, folder.folder, "tables", folder.manifest.hwm_to.audit_key
                )
        finally:
            archive.close()
    return rows


def _prepared(archive: ExportArchive) -> list[TableSchema]:
    """The tables an export's load makes ready in the target: those it has files of, and
    those whose shape changed without a row of them in it (columns added, types widened:
    the target migrates them now, so that it has the source's columns)."""
    schemas = [files.schema for files in archive.tables]
    listed = {schema.name for schema in schemas}
    changed = {c.table for c in archive.manifest.shape_changes if c.outcome != "ended"}
    return schemas + [s for s in archive.all_schemas if s.name in changed and s.name not in listed]


def _apply_run(location: Location, target: Target, run: EntityRun, zone: tzinfo) -> int:
    schemas: list[TableSchema] = [
        table.schema for tables in run.manifest.definitions.values() for table in tables
    ]
    tables = target.prepare(schemas, f"{ENTITY_FOLDER}/{run.label}", entity_records=True)
    with target.transaction() as conn:
        records = apply_run(
            conn, location, ENTITY_FOLDER, run.manifest, tables, zone, target.dialect
        )
        target.record_applied(conn, run.label, "entities", run.run)
    return records
