"""An independent reader of table-export folders, using only the standard library.

It shares no code with tidegate: it checks the format as SPEC.md describes it (names, sha1
files, the XML chain) and rebuilds every table by applying the folders in order. The tests
compare what it rebuilds with the source.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

NAME = re.compile(r"export_(\d+)_(\d{4})_(\d\d)_(\d\d)_(\d\d)_(\d\d)_(\d\d)")

Key = tuple[str, ...]


@dataclass
class Rebuilt:
    """Tables rebuilt from the folders: table -> key -> {column: text}."""

    tables: dict[str, dict[Key, dict[str, str]]] = field(default_factory=dict)
    folders: list[str] = field(default_factory=list)
    chain: list[tuple[int, int]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    schema: dict[str, dict[str, object]] = field(default_factory=dict)


def sha1_of(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def check_sha1_file(content: bytes, data: bytes, name: str) -> None:
    digest, listed = content.decode().rstrip("\n").split("  ", 1)
    assert listed == name, f"{name}: its .sha1 names {listed!r}"
    assert digest == sha1_of(data), f"{name}: sha1 mismatch"


def read_folder(folder: Path) -> tuple[ET.Element, zipfile.ZipFile]:
    name = folder.name
    assert NAME.fullmatch(name), name
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{name}.zip", f"{name}.zip.sha1", f"{name}.extracted.xml"]
    ), f"{name}: unexpected files {sorted(p.name for p in folder.iterdir())}"
    data = (folder / f"{name}.zip").read_bytes()
    check_sha1_file((folder / f"{name}.zip.sha1").read_bytes(), data, f"{name}.zip")
    info = ET.fromstring((folder / f"{name}.extracted.xml").read_bytes())
    for tag in (
        "created-ts",
        "gim-schema-version",
        "gim-version",
        "hwm-from",
        "hwm-to",
        "max-data-ts",
    ):
        assert info.find(tag) is not None, f"{name}: <{tag}> missing"
    return info, zipfile.ZipFile(io.BytesIO(data))


def csv_member(archive: zipfile.ZipFile, member: str) -> list[list[str]]:
    data = archive.read(member)
    check_sha1_file(archive.read(member + ".sha1"), data, member)
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def rebuild(root: Path) -> Rebuilt:
    """Apply every folder below root in audit-key order."""
    folders = sorted(
        (p for p in root.iterdir() if NAME.fullmatch(p.name)),
        key=lambda p: int(NAME.fullmatch(p.name).group(1)),
    )  # type: ignore[union-attr]
    result = Rebuilt()
    previous_to = None
    previous_stamp = ""
    for folder in folders:
        info, archive = read_folder(folder)
        hwm_from = int(info.find("hwm-from").get("audit-key"))  # type: ignore[union-attr]
        hwm_to = int(info.find("hwm-to").get("audit-key"))  # type: ignore[union-attr]
        if previous_to is not None:
            assert hwm_from == previous_to, f"{folder.name}: chain broken"
        assert hwm_to > hwm_from or previous_to is None
        stamp = folder.name.split("_", 2)[2]
        assert stamp >= previous_stamp, f"{folder.name}: name time went backwards"
        previous_to, previous_stamp = hwm_to, stamp
        result.chain.append((hwm_from, hwm_to))
        result.folders.append(folder.name)
        kind = info.find("tidegate-export").get("kind")  # type: ignore[union-attr]
        result.kinds.append(str(kind))
        schema = json.loads(archive.read("tidegate.schema.json"))
        check_sha1_file(
            archive.read("tidegate.schema.json.sha1"),
            archive.read("tidegate.schema.json"),
            "tidegate.schema.json",
        )
        by_file = {table["file"]: table for table in schema["tables"]}
        result.schema = {table["name"]: table for table in schema["tables"]}
        listed = {node.get("name") for node in info.findall("tidegate-table")}
        for member in archive.namelist():
            if not member.endswith(".csv") or member.endswith(".deleted.csv"):
                continue
            table = by_file[member]
            assert table["name"] in listed
            rows = csv_member(archive, member)
            header, body = rows[0], rows[1:]
            assert header == [c["name"] for c in table["columns"]]
            key_index = [header.index(k) for k in table["primary_key"]]
            target = result.tables.setdefault(table["name"], {})
            if kind == "snapshot" or member_is_whole(info, table["name"]):
                target.clear()
            for row in body:
                assert len(row) == len(header), f"{member}: ragged row {row!r}"
                target[tuple(row[i] for i in key_index)] = dict(zip(header, row, strict=True))
            deleted = member[: -len(".csv")] + ".deleted.csv"
            if deleted in archive.namelist():
                gone = csv_member(archive, deleted)
                assert gone[0] == table["primary_key"]
                for key in gone[1:]:
                    target.pop(tuple(key), None)
        # A migrated table (<tidegate-shape-change outcome="migrated">): the rows held from
        # before hold NULL in the columns added since, as the format says.
        for table in schema["tables"]:
            for row in result.tables.get(table["name"], {}).values():
                for column in table["columns"]:
                    row.setdefault(column["name"], "")
    return result


def member_is_whole(info: ET.Element, table: str) -> bool:
    """An incremental export carries some tables whole (tables added to the selection)."""
    return any(
        node.get("name") == table and node.get("whole") == "true"
        for node in info.findall("tidegate-table")
    )
