"""An entity run's manifest (`INIT_EXPORT_<run>.manifest.json`), read strictly.

jsonl.py writes it; this module reads it for `verify` and `load`, checking every field, as
a manifest may come from anywhere: file names must be entity-file names (no path), counts
numbers, every file's entity defined, every definition's tables valid (tableschema.py)
with a `root_key` made of their columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tidegate.errors import FormatError
from tidegate.formats.naming import EntityFileName
from tidegate.formats.tableschema import TableSchema, parse_tables

RunKind = Literal["INIT_EXPORT", "INC_EXPORT"]
MANIFEST = re.compile(r"(INIT_EXPORT|INC_EXPORT)_(\d{1,18})\.manifest\.json", re.ASCII)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
"""The most a run manifest is read of: MAX_FILES entries and the entities' definitions."""
MAX_COUNT = 2**63 - 1
MAX_RECORD_BYTES = 8 * 1024**3
"""The longest entity record (one line) a run may hold: an entity of several values of a
gigabyte each, the most a source holds, once escaped as JSON."""
UNRECORDED_LONGEST = 64 * 1024 * 1024
"""The bound on a record line of a file whose manifest does not record its longest
(runs exported by tidegate 0.1)."""
MAX_FILES = 100_000
_SHA1 = re.compile(r"[0-9a-f]{40}")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)


@dataclass(frozen=True)
class RunFile:
    """One file of a run, as its manifest lists it."""

    name: str
    entity: str
    records: int
    bytes: int
    sha1: str
    longest: int = UNRECORDED_LONGEST  # bytes of its longest record line


@dataclass(frozen=True)
class EntityTable:
    """One table of an entity: its schema and the columns holding the root's key."""

    schema: TableSchema
    root_key: tuple[str, ...]


@dataclass(frozen=True)
class RunManifest:
    """A run's manifest. `created` is when the run started, as the records' `TIMESTAMP`s
    are written (UTC ISO-8601 with microseconds and Z): every record of the run was read
    at or after it."""

    kind: RunKind
    run: int
    files: tuple[RunFile, ...]
    definitions: dict[str, tuple[EntityTable, ...]]  # entity -> tables, root first
    created: str = ""


def manifest_kind(name: str) -> tuple[RunKind, int] | None:
    """(kind, run) of a manifest file name, or None when the name is not one."""
    match = MANIFEST.fullmatch(name)
    if not match:
        return None
    return ("INIT_EXPORT" if match.group(1) == "INIT_EXPORT" else "INC_EXPORT"), int(match.group(2))


def parse_run_manifest(data: bytes, where: str) -> RunManifest:
    """Read a run manifest; `where` names it in errors.

    Raises:
        FormatError: not a valid run manifest.
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise FormatError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != 1:
        raise FormatError(f"{where}: not a tidegate run manifest (format 1)")
    kind, run = document.get("kind"), document.get("run", 0)
    if kind not in ("INIT_EXPORT", "INC_EXPORT") or not _count(run):
        raise FormatError(f"{where}: kind and run are missing or wrong")
    created = document.get("created")
    if not isinstance(created, str) or not _TIMESTAMP.fullmatch(created):
        raise FormatError(f"{where}: created must be a UTC time like 2026-01-31T12:00:00.000000Z")
    definitions = _definitions(document.get("definitions"), where)
    files = document.get("files")
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise FormatError(f"{where}: files must be a list of at most {MAX_FILES}")
    parsed = tuple(_file(entry, kind, definitions, where) for entry in files)
    if len({f.name for f in parsed}) != len(parsed):
        raise FormatError(f"{where}: a file is listed twice")
    return RunManifest(kind, int(run), parsed, definitions, created)


def _definitions(value: Any, where: str) -> dict[str, tuple[EntityTable, ...]]:
    if not isinstance(value, dict):
        raise FormatError(f"{where}: no entity definitions")
    definitions = {}
    for entity, definition in value.items():
        tables = definition.get("tables") if isinstance(definition, dict) else None
        schemas = parse_tables(tables, f"{where}: entity {entity!r}")
        if not schemas:
            raise FormatError(f"{where}: entity {entity!r} has no tables")
        parsed = []
        for schema, raw in zip(schemas, tables or [], strict=True):
            key = raw.get("root_key")
            columns = {c.name for c in schema.columns}
            if not isinstance(key, list) or not key or any(k not in columns for k in key):
                raise FormatError(
                    f"{where}: entity {entity!r}, table {schema.name!r}: root_key must name "
                    "its columns"
                )
            parsed.append(EntityTable(schema, tuple(key)))
        widths = {len(t.root_key) for t in parsed}
        if len(widths) != 1:
            raise FormatError(f"{where}: entity {entity!r}: its tables' root keys differ")
        definitions[str(entity)] = tuple(parsed)
    return definitions


def _file(entry: Any, kind: str, definitions: dict[str, Any], where: str) -> RunFile:
    if not isinstance(entry, dict):
        raise FormatError(f"{where}: a file entry is not an object")
    name = entry.get("name")
    try:
        parsed = EntityFileName.parse(name) if isinstance(name, str) else None
    except FormatError:
        parsed = None
    if parsed is None or parsed.kind != kind:
        raise FormatError(f"{where}: {name!r} is not a file name of this run")
    entity = entry.get("entity")
    if kind == "INIT_EXPORT" and entity not in definitions:
        raise FormatError(f"{where}: {name} belongs to an entity the manifest does not define")
    records, size, sha1 = entry.get("records", -1), entry.get("bytes", -1), entry.get("sha1")
    if not (_count(records, zero=True) and _count(size, zero=True)):
        raise FormatError(
            f"{where}: {name}: records and bytes must be counts, out of range above {MAX_COUNT}"
        )
    if not isinstance(sha1, str) or not _SHA1.fullmatch(sha1):
        raise FormatError(f"{where}: {name}: sha1 must be 40 lowercase hex digits")
    longest = entry.get("longest", UNRECORDED_LONGEST)
    if not _count(longest, zero=True) or longest > MAX_RECORD_BYTES:
        raise FormatError(
            f"{where}: {name}: longest must be a count, out of range above {MAX_RECORD_BYTES:,}"
        )
    return RunFile(str(name), str(entity or ""), int(records), int(size), sha1, int(longest))


def _count(value: Any, *, zero: bool = False) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (0 if zero else 1) <= value <= MAX_COUNT
    )
