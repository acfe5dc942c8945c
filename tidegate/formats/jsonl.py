"""Entity records as JSON Lines: one entity per line, values as the format prescribes.

    {"OBJ": "ACCOUNT", "TIMESTAMP": "2019-07-25T11:06:04.740615Z", "PK1": "4721",
     "DATA": {"ci_acct": [{...}], "ci_acct_char": [], "ci_acct_per": [{...}, {...}]}}

| value | JSON |
|---|---|
| NULL, empty string | `""` (never `null`) |
| text | a string, trailing spaces trimmed |
| integer | a number |
| exact numeric | a number with every digit (never rounded through a float) |
| float | a number that reads back to the same float (non-finite: `NaN`, `Infinity`) |
| boolean | `true` / `false` |
| date | `"YYYY-MM-DD"` |
| timestamp | `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` in UTC; naive values are read in the source's zone |
| time | `"HH:MM:SS.ffffff"` |
| bytes | a lowercase hex string |
| JSON document | as it is |

`PK1`…`PK5` are the root key's values as strings; `DELETED: true` marks an entity that no
longer exists, with every table an empty array.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import orjson

from tidegate.formats.csvrows import value_text

MAX_KEY_COLUMNS = 5
_PK_FIELDS = tuple(f"PK{index}" for index in range(1, MAX_KEY_COLUMNS + 1))


def json_value(value: object, zone: tzinfo) -> Any:
    """A column value as the entity format writes it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.rstrip(" ")
    if isinstance(value, bool | int | dict | list):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else value_text(value)  # NaN: no JSON number
    if isinstance(value, Decimal):
        # A JSON number written as is: every digit kept.
        return orjson.Fragment(format(value, "f")) if value.is_finite() else str(value)
    if isinstance(value, datetime):
        return timestamp_text(value, zone)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if isinstance(value, timedelta):
        return value_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def key_text(value: object, zone: tzinfo) -> str:
    """A root-key value as the string `PK1`…`PK5` hold."""
    if type(value) is int:  # the usual key, first
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(json_value(value, zone))


def timestamp_text(moment: datetime, zone: tzinfo) -> str:
    """UTC ISO-8601 with microseconds and Z; a naive value is read in `zone`."""
    if moment.tzinfo is None:
        if zone is UTC:  # the common case, without a zone conversion
            return moment.isoformat(timespec="microseconds") + "Z"
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def clean_row(columns: Sequence[str], values: Sequence[object]) -> dict[str, object]:
    """A row as a record holds it, for the types orjson writes natively: NULL as "", text
    without trailing spaces, non-finite floats as text. Every other type is turned into
    its JSON form by `json_value` when the record is written (orjson's `default` hook), so
    the common types cost no extra Python call."""
    row: dict[str, object] = {}
    for column, value in zip(columns, values, strict=True):
        if type(value) is str:
            row[column] = value.rstrip(" ")
        elif value is None:
            row[column] = ""
        elif type(value) is float and not math.isfinite(value):
            row[column] = value_text(value)
        else:
            row[column] = value
    return row


def entity_record(
    obj: str,
    snapshot: datetime | str,
    key: Sequence[object],
    data: Mapping[str, Sequence[Mapping[str, object]]],
    zone: tzinfo,
    deleted: bool = False,
    *,
    prepared: bool = False,
) -> bytes:
    """One line: an entity's snapshot (or its deletion), newline included.

    Args:
        obj: the entity's name.
        snapshot: when the snapshot was taken, or that time already formatted (a batch of
            records formats it once).
        key: the root key's values.
        data: table -> rows (column -> value), every table of the entity.
        zone: the zone of naive date-times.
        deleted: the entity no longer exists.
        prepared: the rows hold no NULL (None) any more, so the written line is checked
            instead of every value: orjson writes a non-finite float as `null` and a text
            with trailing spaces shows as a space before a closing quote (a quote inside a
            text is escaped, and compact JSON has no other spaces). Only a line showing
            either is written again from fully cleaned rows.
    """
    stamp = snapshot if isinstance(snapshot, str) else timestamp_text(snapshot, UTC)
    record: dict[str, Any] = {"OBJ": obj, "TIMESTAMP": stamp}
    record.update(zip(_PK_FIELDS, [key_text(value, zone) for value in key], strict=False))
    if deleted:
        record["DELETED"] = True
        record["DATA"] = {table: [] for table in data}
        return _dumps(record, zone)
    record["DATA"] = data
    if prepared:
        line = _dumps(record, zone)
        if b"null" not in line and b' "' not in line:
            return line
    record["DATA"] = {table: [_cleaned(row) for row in rows] for table, rows in data.items()}
    return _dumps(record, zone)


def _cleaned(row: Mapping[str, object]) -> dict[str, object]:
    return clean_row(list(row), list(row.values()))


def _dumps(record: dict[str, Any], zone: tzinfo) -> bytes:
    return orjson.dumps(
        record,
        default=_default(zone),
        option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE,
    )


@functools.cache
def _default(zone: tzinfo) -> Callable[[object], Any]:
    """orjson's hook for the types it does not write as the format wants (one per zone)."""
    return functools.partial(json_value, zone=zone)


def manifest_name(kind: str, run: int) -> str:
    """The manifest of a run: `INIT_EXPORT_<run>.manifest.json`, `INC_EXPORT_<run>…`."""
    return f"{kind}_{run}.manifest.json"


def run_manifest(
    kind: str,
    run: int,
    created: datetime,
    definitions: Mapping[str, Mapping[str, Any]],
    threads: int,
    records_per_file: int,
    files: Sequence[Mapping[str, object]],
) -> bytes:
    """A run's manifest, written after all its files: a run without one is incomplete.

    `definitions` describes each exported entity's tables for a loader: every table's
    columns (portable types, as in a table export's schema), primary key, and `root_key`,
    the columns holding the root's key. `files` lists each file's name, entity, thread,
    seq, records, bytes and sha1, in the order a consumer applies them (entity, thread,
    seq).
    """
    return orjson.dumps(
        {
            "format": 1,
            "kind": kind,
            "run": run,
            "created": timestamp_text(created, UTC),
            "entities": sorted(definitions),
            "definitions": dict(definitions),
            "threads": threads,
            "records_per_file": records_per_file,
            "records": sum(int(str(f["records"])) for f in files),
            "files": list(files),
        },
        option=orjson.OPT_INDENT_2,
    )
