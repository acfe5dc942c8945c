"""What a location holds: table-export folders in chain order and entity runs in apply
order, each with what could be read of its manifest. Shared by `verify` and `load`."""

from __future__ import annotations

from dataclasses import dataclass, field

from tidegate.errors import FormatError, NoExports, OutputError
from tidegate.formats.manifest import MAX_MANIFEST_BYTES, Manifest, parse
from tidegate.formats.naming import ExportName, looks_like_export
from tidegate.formats.runmanifest import MAX_MANIFEST_BYTES as MAX_RUN_MANIFEST_BYTES
from tidegate.formats.runmanifest import RunKind, RunManifest, manifest_kind, parse_run_manifest
from tidegate.storage import STAGING, Location

ENTITY_FOLDER = "entities"


@dataclass(frozen=True)
class Problem:
    """Something wrong with a file of a location, for one line of output. A problem that
    is not `serious` is a note (a folder that is no export); load refuses the others."""

    file: str
    message: str
    serious: bool = True

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass(frozen=True)
class TableFolder:
    """A table-export folder; `manifest` is None while its `.extracted.xml` is missing."""

    name: ExportName
    manifest: Manifest | None

    @property
    def folder(self) -> str:
        return self.name.format()


@dataclass(frozen=True)
class EntityRun:
    """An entity run with a readable manifest."""

    kind: RunKind
    run: int
    manifest: RunManifest

    @property
    def label(self) -> str:
        return f"{self.kind}_{self.run}"


@dataclass
class Inventory:
    tables: list[TableFolder] = field(default_factory=list)  # by audit key
    runs: list[EntityRun] = field(default_factory=list)  # initial runs, then ongoing, by run
    problems: list[Problem] = field(default_factory=list)


def require_exports(location: Location, inventory: Inventory) -> None:
    """Refuse a location that does not exist or holds no export (and nothing that looks
    like one): a wrong path would otherwise read as "all verified" or "nothing to load"."""
    if inventory.tables or inventory.runs or inventory.problems:
        return
    what = "holds no export" if location.exists() else "does not exist"
    raise NoExports(
        f"{location.label}: {location.url} {what}",
        "check the path ([output] location, or the LOCATION argument); exports appear "
        "there once `tidegate export tables` or `tidegate export initial` has run",
    )


def take_inventory(location: Location) -> Inventory:
    """Everything at the location that looks like an export, in the order to apply it."""
    inventory = Inventory()
    for folder in location.folders():
        if folder in (ENTITY_FOLDER, STAGING):
            continue
        try:
            name = ExportName.parse(folder)
        except FormatError as error:
            if looks_like_export(folder):
                problem = error.message.removeprefix(f"{folder!r}").lstrip(": ")
                inventory.problems.append(Problem(folder, problem))
            else:
                inventory.problems.append(Problem(folder, "not an export folder (ignored)", False))
            continue
        inventory.tables.append(TableFolder(name, _table_manifest(location, name, inventory)))
    inventory.tables.sort(key=lambda t: t.name)
    _entity_runs(location, inventory)
    return inventory


def _table_manifest(location: Location, name: ExportName, inventory: Inventory) -> Manifest | None:
    path = f"{name.format()}/{name.manifest_name}"
    if not location.exists(name.format(), name.manifest_name):
        return None
    try:
        data = location.read_bytes(name.format(), name.manifest_name, limit=MAX_MANIFEST_BYTES)
        return parse(data, path)
    except (FormatError, OutputError) as error:
        inventory.problems.append(_problem(path, error.message))
        return None


def _entity_runs(location: Location, inventory: Inventory) -> None:
    found: list[EntityRun] = []
    for file in location.files(ENTITY_FOLDER):
        kind_run = manifest_kind(file)
        if kind_run is None:
            continue
        path = f"{ENTITY_FOLDER}/{file}"
        try:
            data = location.read_bytes(ENTITY_FOLDER, file, limit=MAX_RUN_MANIFEST_BYTES)
            manifest = parse_run_manifest(data, path)
        except (FormatError, OutputError) as error:
            inventory.problems.append(_problem(path, error.message))
            continue
        if (manifest.kind, manifest.run) != kind_run:
            inventory.problems.append(Problem(path, "names another run than its file name"))
            continue
        found.append(EntityRun(manifest.kind, manifest.run, manifest))
    found.sort(key=lambda r: (r.kind != "INIT_EXPORT", r.run))
    inventory.runs = found


def _problem(path: str, message: str) -> Problem:
    """A problem with a file, its path said once (a format error's message starts with it)."""
    return Problem(path, message.removeprefix(f"{path}: "))
