"""How each value was written: its CSV field in a table export, its JSON value in an entity
record, as the exact text in the files (for docs/types.md).

Read with the standard library alone. A CSV field is kept with its quotes, so `""` (an
empty string) and an empty field (NULL) stay apart; a JSON number keeps its digits.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

# table -> column -> row id (as text) -> the value as written
Written = dict[str, dict[str, dict[str, str]]]


def raw_records(text: str) -> list[list[str]]:
    """RFC 4180 records whose fields keep their quotes (`"a,b"`, `""`)."""
    records: list[list[str]] = []
    fields: list[str] = []
    field: list[str] = []
    quoted = False
    for char in text:
        if quoted:
            field.append(char)
            quoted = char != '"'  # a doubled quote closes and reopens at once
        elif char == '"':
            field.append(char)
            quoted = True
        elif char == ",":
            fields.append("".join(field))
            field = []
        elif char == "\n":
            fields.append("".join(field))
            records.append(fields)
            fields, field = [], []
        else:
            field.append(char)
    if field or fields:
        fields.append("".join(field))
        records.append(fields)
    return records


def unquoted(field: str) -> str:
    if len(field) >= 2 and field[0] == field[-1] == '"':
        return field[1:-1].replace('""', '"')
    return field


def csv_fields(location: Path, row_ids: dict[str, str]) -> Written:
    """Every field of every table-export CSV under `location`, by table, column and the
    row's id (`row_ids`: table -> the column telling its rows apart)."""
    written: Written = {}
    for archive in sorted(location.glob("export_*/*.zip")):
        with zipfile.ZipFile(archive) as members:
            schema = json.loads(members.read("tidegate.schema.json"))
            for table in schema["tables"]:
                if table["file"] not in members.namelist():
                    continue
                text = members.read(table["file"]).decode("utf-8")
                written[table["name"]] = _by_row(raw_records(text), row_ids[table["name"]])
    return written


def _by_row(records: list[list[str]], row_id: str) -> dict[str, dict[str, str]]:
    header = [unquoted(name) for name in records[0]]
    columns: dict[str, dict[str, str]] = {name: {} for name in header}
    at = header.index(row_id)
    for record in records[1:]:
        for name, field in zip(header, record, strict=False):
            columns[name][unquoted(record[at])] = field
    return columns


class _Number(str):
    """A JSON number, kept as its text."""


def json_values(location: Path, row_ids: dict[str, str]) -> Written:
    """Every value of every entity record under `location`, as JSON text."""
    written: Written = {}
    for path in sorted((location / "entities").glob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line, parse_float=_Number, parse_int=_Number)
                for table, rows in record["DATA"].items():
                    columns = written.setdefault(table, {})
                    for row in rows:
                        row_id = str(row[row_ids[table]])
                        for name, value in row.items():
                            columns.setdefault(name, {})[row_id] = json_text(value)
    return written


def json_text(value: Any) -> str:
    """A parsed JSON value written back, numbers with the digits they had."""
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json_text(k)}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)
