"""`tidegate load` into an Iceberg warehouse: the outline of loader.py (lock, inventory,
chain, verify first, then apply in order) over the warehouse's own records of what it
applied, which live in its tables' and namespace's properties, committed with the rows
(iceberg.py for table exports, iceberg_entities.py for entity runs)."""

from __future__ import annotations

import time
from datetime import timedelta, tzinfo

from tidegate.load import iceberg_entities
from tidegate.load.archive import ExportArchive
from tidegate.load.iceberg import IcebergTarget
from tidegate.load.inventory import Inventory, TableFolder, require_exports, take_inventory
from tidegate.load.loader import (
    LoadKind,
    LoadResult,
    LoadStep,
    Progress,
    folder_size,
    log_applied,
    pending_folders,
    recorded,
    refuse,
    run_size,
)
from tidegate.load.verify import check_entity_run, check_table_folder
from tidegate.storage import Location


def load_iceberg(
    location: Location,
    target: IcebergTarget,
    zone: tzinfo,
    progress: Progress,
    only: LoadKind | None = None,
    keep: timedelta = timedelta(days=7),
) -> LoadResult:
    """Every complete table export and entity run the warehouse has not applied, in
    order (table exports in chain order, then entity runs), each verified first; `only`
    one kind. Recorded in the warehouse's load history (kept for `keep`)."""
    with target.exclusive():
        inventory = take_inventory(location)
        require_exports(location, inventory)
        result = LoadResult()
        with recorded(target.history, keep, result), target.catalog_errors():
            _load(location, inventory, target, zone, progress, only, result)
        return result


def _load(
    location: Location,
    inventory: Inventory,
    target: IcebergTarget,
    zone: tzinfo,
    progress: Progress,
    only: LoadKind | None,
    result: LoadResult,
) -> None:
    refuse([problem for problem in inventory.problems if problem.serious])
    target.create_namespace()
    last = target.last_table_export()
    applied = {last[0]: ("tables", last[1])} if last else {}
    folders = [] if only == "entities" else pending_folders(inventory.tables, applied, result)
    held = iceberg_entities.applied_runs(target)
    runs = (
        []
        if only == "tables"
        else [r for r in inventory.runs if not iceberg_entities.holds(held, r)]
    )
    total = sum(map(folder_size, folders)) + sum(map(run_size, runs))
    done = 0
    for folder in folders:
        progress(LoadStep(f"verifying {folder.folder}", done, total))
        refuse(check_table_folder(location, folder, deep=False))
    for run in runs:
        progress(LoadStep(f"verifying {run.label}", done, total))
        refuse(check_entity_run(location, run))
    for folder in folders:
        progress(LoadStep(f"loading {folder.folder}", done, total))
        started = time.monotonic()
        rows = _apply_folder(location, target, folder)
        log_applied(folder.folder, "tables", rows, started)
        result.rows += rows
        result.tables.append(folder.folder)
        done += folder_size(folder)
    for run in runs:
        progress(LoadStep(f"loading {run.label}", done, total))
        started = time.monotonic()
        records = iceberg_entities.apply_run(target, location, run, zone)
        log_applied(run.label, "entities", records, started)
        result.records += records
        result.runs.append(run.label)
        done += run_size(run)
    progress(LoadStep("loaded", done, total))


def _apply_folder(location: Location, target: IcebergTarget, folder: TableFolder) -> int:
    assert folder.manifest is not None
    with location.reading(folder.folder, folder.name.zip_name) as handle:
        where = f"{folder.folder}/{folder.name.zip_name}"
        archive = ExportArchive(handle, where, folder.manifest)
        try:
            return target.apply_folder(archive, folder.manifest, folder)
        finally:
            archive.close()
