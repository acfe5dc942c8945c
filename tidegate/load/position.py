"""Load position: what the target has applied, beside what the location holds.

Read-only: it creates nothing in the target (a target that tidegate never loaded simply
has nothing applied) and verifies nothing at the location (that is `verify`'s job); it
lists the complete exports the next load would consider.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import sqlalchemy as sa

from tidegate.config import TargetConfig
from tidegate.errors import TidegateError
from tidegate.load import iceberg_entities
from tidegate.load.iceberg import IcebergTarget, is_iceberg
from tidegate.load.inventory import Inventory, take_inventory
from tidegate.load.loader import last_applied_folder
from tidegate.load.target import Target, applied_table
from tidegate.storage import Location


@dataclass(frozen=True)
class LoadPosition:
    """How far the target is."""

    target: str  # its URL, password hidden
    applied: int  # exports applied, both kinds
    last_table_export: str | None
    last_entity_run: str | None
    last_applied_at: str | None  # ISO 8601, UTC
    pending_table_exports: tuple[str, ...]  # complete folders not yet applied, in order
    pending_entity_runs: tuple[str, ...]
    waiting: str | None  # a folder still being written
    error: str = ""  # why the target or location could not be read, if it could not
    recent: tuple[FolderTables, ...] = ()  # the location's newest complete folders, newest first


@dataclass(frozen=True)
class TableCount:
    """One table's rows in a table-export folder, as its manifest counts them."""

    table: str
    rows: int
    deleted: int


@dataclass(frozen=True)
class FolderTables:
    """A complete table-export folder and the rows of each table in it."""

    folder: str
    tables: tuple[TableCount, ...]


RECENT_FOLDERS = 5


def load_position(
    location: Location, target_url: str, settings: TargetConfig | None = None
) -> LoadPosition:
    """The target's applied exports and the location's exports still to apply (`settings`:
    an Iceberg target's namespace and catalog)."""
    held_runs: dict[str, list[list[int]]] = {}
    if is_iceberg(target_url):
        safe_url = target_url
        applied, held_runs, error = _applied_in_iceberg(target_url, settings)
    else:
        target = Target(target_url)
        safe_url = target.safe_url
        try:
            applied, error = _applied(target)
        finally:
            target.dispose()
    try:
        inventory = take_inventory(location)
    except TidegateError as failure:
        return _position(safe_url, applied, (), (), None, error or failure.message)
    for run in inventory.runs:  # an Iceberg warehouse's runs, known by their numbers
        if iceberg_entities.holds(held_runs, run):
            applied[run.label] = ("entities", "", run.run)
    last = last_applied_folder({name: (kind, pos) for name, (kind, _at, pos) in applied.items()})
    later = [
        f for f in inventory.tables if f.folder not in applied and (not last or f.name > last[0])
    ]
    complete = tuple(f.folder for f in later if f.manifest is not None)
    waiting = next((f.folder for f in later if f.manifest is None), None)
    runs = tuple(run.label for run in inventory.runs if run.label not in applied)
    position = _position(safe_url, applied, complete, runs, waiting, error)
    return replace(position, recent=_recent(inventory))


def _recent(inventory: Inventory) -> tuple[FolderTables, ...]:
    complete = [f for f in inventory.tables if f.manifest is not None]
    return tuple(
        FolderTables(
            folder.folder,
            tuple(TableCount(t.name, t.rows, t.deleted) for t in folder.manifest.tables),
        )
        for folder in reversed(complete[-RECENT_FOLDERS:])
        if folder.manifest is not None
    )


# name -> (kind, applied_at, position), in the order applied
Applied = dict[str, tuple[str, str, int]]


def _applied(target: Target) -> tuple[Applied, str]:
    """The target's applied exports, read without creating anything in it."""
    database = target.engine.url.database
    if target.dialect.opens_file and (not database or not os.path.exists(database)):
        return {}, ""  # opening the file would create it
    try:
        with target.engine.connect() as conn:
            if not sa.inspect(conn).has_table(applied_table.name):
                return {}, ""
            columns = applied_table.c
            query = sa.select(columns.export, columns.kind, columns.applied_at, columns.position)
            ordered = query.order_by(columns.applied_at, columns.kind.desc(), columns.position)
            return {row[0]: (row[1], row[2], int(row[3])) for row in conn.execute(ordered)}, ""
    except sa.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        return {}, f"target {target.safe_url}: {reason}"


def _applied_in_iceberg(
    url: str, settings: TargetConfig | None
) -> tuple[Applied, dict[str, list[list[int]]], str]:
    """The last table export an Iceberg warehouse applied whole (it records no other),
    and the entity runs it applied (run numbers as ranges, by kind)."""
    try:
        target = IcebergTarget(url, settings)
    except TidegateError as error:
        return {}, {}, error.message
    try:
        with target.catalog_errors():
            last = target.last_table_export()
            runs = iceberg_entities.applied_runs(target)
    except TidegateError as error:
        return {}, {}, error.message
    finally:
        target.dispose()
    return ({last[0]: ("tables", "", last[1])} if last else {}), runs, ""


def _position(
    target: str,
    applied: Applied,
    pending_tables: tuple[str, ...],
    pending_runs: tuple[str, ...],
    waiting: str | None,
    error: str,
) -> LoadPosition:
    tables = [
        (position, name) for name, (kind, _at, position) in applied.items() if kind == "tables"
    ]
    runs = [name for name, (kind, _at, _position) in applied.items() if kind == "entities"]
    return LoadPosition(
        target=target,
        applied=len(applied),
        last_table_export=max(tables)[1] if tables else None,
        last_entity_run=runs[-1] if runs else None,
        last_applied_at=max((at for _kind, at, _p in applied.values()), default=None),
        pending_table_exports=pending_tables,
        pending_entity_runs=pending_runs,
        waiting=waiting,
        error=error,
    )
