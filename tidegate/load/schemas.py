"""The newest description of every exported table at a location, for `target-ddl`."""

from __future__ import annotations

from tidegate.formats.tableschema import TableSchema
from tidegate.load.archive import ExportArchive
from tidegate.load.inventory import take_inventory
from tidegate.storage import Location


def newest_schemas(location: Location) -> list[TableSchema]:
    """Every table the newest complete table export describes (its schema lists every
    captured table), then the tables of entity runs not among them, newest run first."""
    inventory = take_inventory(location)
    found: dict[str, TableSchema] = {}
    for folder in reversed(inventory.tables):
        if folder.manifest is None:
            continue
        with location.reading(folder.folder, folder.name.zip_name) as handle:
            archive = ExportArchive(handle, folder.folder, folder.manifest)
            found = {schema.name: schema for schema in archive.all_schemas}
            archive.close()
        break
    for run in reversed(inventory.runs):
        for tables in run.manifest.definitions.values():
            for table in tables:
                found.setdefault(table.schema.name, table.schema)
    return [found[name] for name in sorted(found)]
