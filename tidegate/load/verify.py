"""`tidegate verify`: every export at a location checked without loading.

A table-export folder: its `.extracted.xml` present and readable; its zip matching
`.zip.sha1`; the zip's members exactly those its manifest lists, each matching its `.sha1`
member; each CSV's header the table's columns and its record count the manifest's. The
chain: every folder's `hwm-from` equals the `hwm-to` of the folder before it. An entity
run: every file its manifest lists present, of the listed size and sha1, a complete gzip
stream of as many lines as the manifest counts records.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator

from tidegate.errors import LoadError, TidegateError
from tidegate.formats.csvrows import RecordCounter
from tidegate.formats.tablezip import SHA1_FILE_BYTES, parse_sha1_line
from tidegate.load.archive import ExportArchive
from tidegate.load.inventory import (
    ENTITY_FOLDER,
    EntityRun,
    Inventory,
    Problem,
    TableFolder,
    require_exports,
    take_inventory,
)
from tidegate.storage import Location

CHUNK = 1024 * 1024


def verify(location: Location) -> tuple[Inventory, list[Problem]]:
    """The location's exports and every problem found with them."""
    inventory = take_inventory(location)
    require_exports(location, inventory)
    problems = list(inventory.problems)
    for folder in inventory.tables:
        problems += check_table_folder(location, folder)
    problems += check_chain(inventory.tables)
    for run in inventory.runs:
        problems += check_entity_run(location, run)
    return inventory, problems


def check_chain(folders: list[TableFolder]) -> list[Problem]:
    """Consecutive complete folders must chain: hwm-from = hwm-to of the one before."""
    problems = []
    previous: TableFolder | None = None
    for folder in folders:
        if folder.manifest is None:
            continue
        if previous is not None and previous.manifest is not None:
            expected = previous.manifest.hwm_to.audit_key
            if folder.manifest.hwm_from.audit_key != expected:
                problems.append(
                    Problem(
                        folder.folder,
                        f"hwm-from {folder.manifest.hwm_from.audit_key} does not follow "
                        f"{previous.folder} (hwm-to {expected}): an export is missing",
                    )
                )
        previous = folder
    return problems


def check_table_folder(
    location: Location, folder: TableFolder, *, deep: bool = True
) -> list[Problem]:
    """A folder's problems; without `deep`, its members' contents are left to the loader
    (which checks each member's sha1, header and record count as it reads it)."""
    name = folder.name
    if folder.manifest is None:
        return [
            Problem(f"{folder.folder}/{name.manifest_name}", "missing: the export is incomplete")
        ]
    try:
        digest = _file_sha1(location, folder.folder, name.zip_name)
        expected = parse_sha1_line(
            location.read_bytes(folder.folder, name.zip_sha1_name, limit=SHA1_FILE_BYTES),
            name.zip_name,
            f"{folder.folder}/{name.zip_sha1_name}",
        )
        if digest != expected:
            return [Problem(f"{folder.folder}/{name.zip_name}", "does not match its .sha1")]
        with location.reading(folder.folder, name.zip_name) as handle:
            archive = ExportArchive(handle, f"{folder.folder}/{name.zip_name}", folder.manifest)
            try:
                return list(_member_problems(archive, folder)) if deep else []
            finally:
                archive.close()
    except (TidegateError, OSError) as error:
        return [_problem(f"{folder.folder}/{name.zip_name}", error)]


def _member_problems(archive: ExportArchive, folder: TableFolder) -> Iterator[Problem]:
    assert folder.manifest is not None
    for files, entry in zip(archive.tables, folder.manifest.tables, strict=True):
        for member, expected, header in (
            (files.rows, entry.rows, [c.name for c in files.schema.columns]),
            (files.deleted, entry.deleted, list(files.schema.primary_key)),
        ):
            if member == files.deleted and not entry.deleted:
                continue
            counter = RecordCounter()
            try:
                count = sum(counter.feed(chunk) for chunk in archive.body(member, header))
            except LoadError as error:
                yield _problem(f"{archive.where}/{member}", error)
                continue
            if count != expected:
                yield Problem(
                    f"{archive.where}/{member}", f"{count} records, its manifest says {expected}"
                )


def check_entity_run(location: Location, run: EntityRun) -> list[Problem]:
    problems = []
    for file in run.manifest.files:
        where = f"{ENTITY_FOLDER}/{file.name}"
        if not location.exists(ENTITY_FOLDER, file.name):
            problems.append(Problem(where, f"missing, listed by {run.label}"))
            continue
        sha1, size, records = hashlib.sha1(), 0, 0
        try:
            with location.reading(ENTITY_FOLDER, file.name) as handle:
                data = handle.read(CHUNK)
                decompressor = zlib.decompressobj(wbits=31)
                while data:
                    sha1.update(data)
                    size += len(data)
                    while data:  # at most 64 MiB inflated at a time: memory stays bounded
                        records += decompressor.decompress(data, CHUNK * 64).count(b"\n")
                        data = decompressor.unconsumed_tail
                    data = handle.read(CHUNK)
                complete = decompressor.eof
        except (zlib.error, OSError) as error:
            problems.append(Problem(where, f"not a valid gzip file ({error})"))
            continue
        if size != file.bytes or sha1.hexdigest() != file.sha1:
            problems.append(Problem(where, "does not match its size and sha1 in the manifest"))
        elif not complete:
            problems.append(Problem(where, "is cut short"))
        elif records != file.records:
            problems.append(Problem(where, f"{records} records, the manifest says {file.records}"))
    return problems


def _problem(file: str, error: Exception) -> Problem:
    """A problem from an error whose message may already start with a file's path."""
    message = getattr(error, "message", str(error))
    found, _, rest = message.partition(": ")
    return (
        Problem(found, rest)
        if rest and found.startswith(file.split("/")[0])
        else Problem(file, message)
    )


def _file_sha1(location: Location, *parts: str) -> str:
    sha1 = hashlib.sha1()
    with location.reading(*parts) as handle:
        while chunk := handle.read(CHUNK):
            sha1.update(chunk)
    return sha1.hexdigest()
