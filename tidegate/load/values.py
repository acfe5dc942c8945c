"""Exported values turned back into typed values for the target, one rule per portable type.

Both formats write NULL and the empty string alike (an empty CSV field, `""` in JSON), so
the rule is: **an empty value loads as NULL, except in a NOT NULL text column, where it is
the empty string** (the only place the source could have had one). Date-times of a table
export are written as stored and load as they are; an entity export's are UTC (`Z`) and
load into a column without time zone in the source's zone ([source] timezone), so both
kinds leave the same values in the target as in the source.

These converters serve entity records; table-export CSV is converted by the target itself,
in SQL, by the same rules (`TargetDialect.converted`).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from tidegate.formats.tableschema import ColumnSchema, base_type
from tidegate.load.targets import TargetDialect

Convert = Callable[[Any], Any]


def converter(column: ColumnSchema, zone: tzinfo, dialect: TargetDialect) -> Convert:
    """The function turning one exported value (CSV text, or a JSON value) of a column into
    the value to write to a target of `dialect`; it raises ValueError for a value the
    column cannot hold."""
    kind = base_type(column.type)
    empty: Any = "" if kind == "text" and not column.nullable else None
    parse: Convert = _PARSERS.get(kind, _text)
    if kind == "timestamp":
        parse = _beyond_iso(functools.partial(_naive, zone=zone))
    parse = dialect.entity_parser(kind, parse)

    def convert(value: Any) -> Any:
        if value == "" or value is None:
            return empty
        return parse(value)

    return convert


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _numeric(value: Any) -> Decimal:
    try:
        number = Decimal(value) if isinstance(value, str | int | Decimal) else None
    except InvalidOperation:
        number = None
    if number is None:
        raise ValueError(f"not a number: {value!r}")
    return number


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)  # "NaN", "Infinity" and exponents as well
    if isinstance(value, str) and math.isnan(number) and value != "NaN":
        raise ValueError(f"not a number: {value!r}")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "t", "1"):
        return True
    if text in ("false", "f", "0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


_BEYOND_ISO = re.compile(r"-?infinity|\d{4}-.* BC|\d{5,}-.*")
"""Dates and date-times ISO 8601 (and Python) do not write: infinity, before year 1, after
9999. The export writes PostgreSQL's text of them; they load as that text, which a
PostgreSQL target reads and any other target refuses."""


def _beyond_iso(parse: Callable[[str], Any]) -> Convert:
    def parsed(value: Any) -> Any:
        text = str(value)
        try:
            return parse(text)
        except ValueError:
            if _BEYOND_ISO.fullmatch(text):
                return text
            raise

    return parsed


def _aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _naive(value: str, zone: tzinfo) -> datetime:
    """A date-time without zone: as written (table export), or from UTC into `zone`
    (entity export, `…Z`)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(zone).replace(tzinfo=None)


def _json(value: Any) -> Any:
    """A JSON document as an object (the target's JSON type writes it, every digit kept:
    see `targets.base.exact_json`): parsed from text with its decimals exact, as an entity
    record's are."""
    return json.loads(value, parse_float=Decimal) if isinstance(value, str) else value


def _binary(value: Any) -> bytes:
    return bytes.fromhex(str(value))


def _time(value: Any) -> time | str:
    """A time of day; 24:00:00, which Python's time cannot hold, as its text (every
    target's time type reads it)."""
    text = str(value)
    if text.startswith("24:00:00"):
        return text
    return time.fromisoformat(text)


_PARSERS: dict[str, Convert] = {
    "boolean": _boolean,
    "smallint": _integer,
    "integer": _integer,
    "bigint": _integer,
    "numeric": _numeric,
    "float": _float,
    "timestamptz": _beyond_iso(_aware),
    "date": _beyond_iso(date.fromisoformat),
    "time": _time,
    "binary": _binary,
    "json": _json,
    "text": _text,
}
"""Every other portable type (timetz, interval, duration, uuid, varbit) loads as the text
the export wrote, which the target's type reads."""
