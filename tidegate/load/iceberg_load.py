"""`tidegate load` into an Iceberg warehouse: the outline of loader.py (lock, inventory,
chain, verify first, then apply in order) over the warehouse's own records of what it
applied, which live in its tables' and namespace's properties, committed with the rows
(iceberg.py for table exports, iceberg_entities.py for entity runs)."""

from __future__ import annotations

from datetime import tzinfo

from tidegate.load import iceberg_entities
from tidegate.load.archive import ExportArchive
from tidegate.load.iceberg import IcebergTarget
from tidegate.load.inventory import TableFolder, require_exports, take_inventory
from tidegate.load.loader import (
    LoadKind,
    LoadResult,
    LoadStep,
    Progress,
    folder_size,
    pending_folders,
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
) -> LoadResult:
    """Every complete table export and entity run the warehouse has not applied, in
    order (table exports in chain order, then entity runs), each verified first; `only`
    one kind."""
    with target.exclusive(), target.catalog_errors():
        inventory = take_inventory(location)
        require_exports(location, inventory)
        refuse([problem for problem in inventory.problems if problem.serious])
        result = LoadResult()
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
            result.rows += _apply_folder(location, target, folder)
            result.tables.append(folder.folder)
            done += folder_size(folder)
        for run in runs:
            progress(LoadStep(f"loading {run.label}", done, total))
            result.records += iceberg_entities.apply_run(target, location, run, zone)
            result.runs.append(run.label)
            done += run_size(run)
        progress(LoadStep("loaded", done, total))
        return result


def _apply_folder(location: Location, target: IcebergTarget, folder: TableFolder) -> int:
    assert folder.manifest is not None
    with location.reading(folder.folder, folder.name.zip_name) as handle:
        where = f"{folder.folder}/{folder.name.zip_name}"
        archive = ExportArchive(handle, where, folder.manifest)
        try:
            return target.apply_folder(archive, folder.manifest, folder)
        finally:
            archive.close()
