"""The exact comparison rule of every kind of value: each value, as a source or a target
holds it, becomes one canonical form, and two values are equal when their forms are.

- `int`, `decimal`: the exact Decimal (`NaN`, `±Infinity` apart). A target may hold an
  integer, a Decimal, a number's text, or a double (read as its shortest text, which is
  how a double names a decimal).
- `float`: the double's bits (every NaN one NaN; -0.0 is not 0.0). A target may hold a
  double, a number's text, or a Decimal that is the double exactly or its shortest text.
- `bool`: True / False; a target may hold 0 or 1.
- `text`: the string, every character. `bytes`: the bytes.
- `date`, `timestamp`: days since 1970 (and microseconds of the day); from the drivers'
  objects or the text forms temporal.py reads.
- `timestamptz`: microseconds since 1970 UTC; a value without zone is read as UTC (how
  SQLite and MariaDB targets keep it).
- `time`: microseconds of the day (24:00:00 apart); a target may hold a duration within
  a day. `duration`: signed microseconds (MariaDB's TIME).
- `json`: the parsed document, numbers as Decimals, booleans apart from numbers;
  `json_text` the same, for a JSON held as text (MariaDB's).
- `bits:N`: the N bits as text of 0 and 1; from bytes, an integer or that text.
- `sqlite`: storage class and value (INTEGER and REAL are both numbers: SQLite itself
  turns one into the other in a NUMERIC column).
- `pg:<type>`: PostgreSQL's own text of the value: a target's text is read back as
  `<type>` by the source itself and printed again.

A value in no form its kind accepts stays itself, tagged with its Python type, so it
equals nothing but the same value of the same type: conversion is never loose.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.conformance import temporal

Canon = Any  # a hashable-or-comparable tuple, or None for NULL
PgText = Callable[[str, str], str | None]  # (text, type) -> PostgreSQL's text, or None

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_SPECIAL = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}
_SPECIAL_FLOATS = {"nan": "NaN", "inf": "Infinity", "+inf": "Infinity", "-inf": "-Infinity"}


class Canonical:
    """Turns values into canonical forms; `pg_text` reads PostgreSQL-only types back
    through the source database itself (the only exact parser of their texts)."""

    def __init__(self, pg_text: PgText | None = None) -> None:
        self.pg_text = pg_text

    def of(self, kind: str, value: Any) -> Canon:
        if value is None:
            return None
        if isinstance(value, memoryview | bytearray):
            value = bytes(value)
        base, _, argument = kind.partition(":")
        if base == "pg":
            return self._pg(argument, value)
        if base == "bits":
            return _bits(int(argument), value)
        form: Canon = _RULES[base](value)
        return form

    def _pg(self, sql_type: str, value: Any) -> Canon:
        if self.pg_text is None:
            raise ValueError("pg: kinds need the PostgreSQL source to read values back")
        text = _pg_input(value)
        if text is None:
            return _other(value)
        read = self.pg_text(text, sql_type)
        return ("pg", read) if read is not None else ("unreadable text", text)


def _pg_input(value: Any) -> str | None:
    """A target's value as text PostgreSQL can read back: texts as they are, date-times in
    ISO form, a duration within a day (MariaDB's TIME) as a time of day."""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return str(value)  # a number the target holds (money as its amount)
    if isinstance(value, dt.time | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        micros = temporal.duration_of(value)
        if 0 <= micros <= temporal.MICROS_PER_DAY:
            seconds, micro = divmod(micros, 1_000_000)
            return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{micro:06d}"
    return None


def _other(value: Any) -> Canon:
    """A value in no form its kind accepts: equal only to itself."""
    return (type(value).__name__, value if isinstance(value, str | bytes | int) else repr(value))


def _number(value: Any) -> Canon:
    if isinstance(value, bool):
        return _other(value)
    if isinstance(value, int):
        return ("number", Decimal(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            return ("number", _float_special(value))
        return ("number", Decimal(repr(value)))
    if isinstance(value, Decimal):
        return ("number", value if value.is_finite() else _decimal_special(value))
    if isinstance(value, str):
        if value in _SPECIAL:
            return ("number", _SPECIAL[value])
        if _NUMBER.fullmatch(value):
            return ("number", Decimal(value))
    return _other(value)


def _float_special(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _decimal_special(value: Decimal) -> str:
    if value.is_nan():
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _bits_of_double(value: float) -> Canon:
    if math.isnan(value):
        return ("float", "NaN")
    return ("float", struct.pack(">d", value).hex())


def _float(value: Any) -> Canon:
    if isinstance(value, bool):
        return _other(value)
    if isinstance(value, float):
        return _bits_of_double(value)
    if isinstance(value, int):
        return _bits_of_double(float(value)) if Decimal(float(value)) == value else _other(value)
    if isinstance(value, Decimal):
        return _float_of_decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if text in _SPECIAL or text.lower() in _SPECIAL_FLOATS:
            return _bits_of_double(float(text))
        if _NUMBER.fullmatch(text):
            return _bits_of_double(float(text))  # the double the text denotes
    return _other(value)


def _float_of_decimal(value: Decimal) -> Canon:
    """A Decimal is a double's value when it is the double exactly or its shortest text."""
    if not value.is_finite():
        return _bits_of_double(float(value))
    try:
        double = float(value)
    except (OverflowError, InvalidOperation):
        return _other(value)
    if math.isfinite(double) and (Decimal(repr(double)) == value or Decimal(double) == value):
        return _bits_of_double(double)
    return ("number", value)


def _bool(value: Any) -> Canon:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int) and value in (0, 1):
        return ("bool", bool(value))
    return _other(value)


def _text(value: Any) -> Canon:
    return ("text", value) if isinstance(value, str) else _other(value)


def _bytes(value: Any) -> Canon:
    return ("bytes", value) if isinstance(value, bytes) else _other(value)


def _moment(value: Any) -> temporal.Moment | str | None:
    if isinstance(value, dt.datetime | dt.date):
        return temporal.moment_of(value)
    if isinstance(value, str):
        return temporal.parse_moment(value)
    return None


def _date(value: Any) -> Canon:
    moment = _moment(value)
    if isinstance(moment, str):
        return ("date", moment)
    if moment is None or moment[1] is not None:
        return _other(value)  # a date-time, even at midnight, is no date
    return ("date", moment[0])


def _timestamp(value: Any) -> Canon:
    moment = _moment(value)
    if isinstance(moment, str):
        return ("timestamp", moment)
    if moment is None:
        return _other(value)
    days, micros, offset = moment
    if micros is None:
        return _other(value)  # a date is no date-time
    if offset is not None:
        return ("timestamptz", days * temporal.MICROS_PER_DAY + micros - offset * 1_000_000)
    return ("timestamp", days, micros)


def _timestamptz(value: Any) -> Canon:
    """An instant; a value without zone is read as UTC (how SQLite and MariaDB targets
    keep it, and how MariaDB's TIMESTAMP reads in a session at +00:00)."""
    moment = _moment(value)
    if isinstance(moment, str):
        return ("timestamptz", moment)
    if moment is None:
        return _other(value)
    days, micros, offset = moment
    if micros is None:
        return _other(value)
    return ("timestamptz", days * temporal.MICROS_PER_DAY + micros - (offset or 0) * 1_000_000)


def _time(value: Any) -> Canon:
    clock: tuple[int, int | None] | None = None
    if isinstance(value, dt.time):
        clock = temporal.clock_of(value)
    elif isinstance(value, dt.timedelta):
        micros = temporal.duration_of(value)
        clock = (micros, None) if 0 <= micros <= temporal.MICROS_PER_DAY else None
    elif isinstance(value, str):
        clock = temporal.parse_clock(value)
    if clock is None:
        return _other(value)
    micros, offset = clock
    return ("time", micros) if offset is None else ("timetz", micros, offset)


def _duration(value: Any) -> Canon:
    if isinstance(value, dt.timedelta):
        return ("duration", temporal.duration_of(value))
    if isinstance(value, dt.time) and value.utcoffset() is None:
        return ("duration", temporal.clock_of(value)[0])
    if isinstance(value, str):
        micros = temporal.parse_duration(value)
        if micros is not None:
            return ("duration", micros)
    return _other(value)


def _json(value: Any) -> Canon:
    if isinstance(value, bytes):
        return _other(value)
    if isinstance(value, str):
        try:
            document = json.loads(value, parse_float=Decimal, parse_constant=_refused)
        except ValueError:
            return _other(value)
        return ("json", _document(document))
    return _other(value)


def _refused(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _document(value: Any) -> Any:
    """A parsed document where `true` is not `1` and 1.10 equals 1.1 (both Decimals)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | Decimal):
        return ("number", Decimal(value))
    if isinstance(value, list):
        return [_document(item) for item in value]
    if isinstance(value, dict):
        return {key: _document(item) for key, item in value.items()}
    return value


def _bits(width: int, value: Any) -> Canon:
    if isinstance(value, bytes) and len(value) * 8 >= width:
        number = int.from_bytes(value, "big")
        return ("bits", format(number, f"0{width}b")) if number < 2**width else _other(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**width:
        return ("bits", format(value, f"0{width}b"))
    if isinstance(value, str) and len(value) == width and set(value) <= {"0", "1"}:
        return ("bits", value)
    return _other(value)


def _sqlite(value: Any) -> Canon:
    """SQLite's storage classes: INTEGER and REAL are both numbers (SQLite itself turns
    one into the other in NUMERIC columns), TEXT and BLOB are themselves."""
    if isinstance(value, float):
        if value == 0 and math.copysign(1, value) < 0:
            return ("number", "-0")
        return _number(value)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return _number(value)
    if isinstance(value, str):
        return ("text", value)
    if isinstance(value, bytes):
        return ("blob", value)
    return _other(value)


_RULES: dict[str, Callable[[Any], Canon]] = {
    "int": _number,
    "decimal": _number,
    "float": _float,
    "bool": _bool,
    "text": _text,
    "bytes": _bytes,
    "date": _date,
    "time": _time,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "duration": _duration,
    "json": _json,
    "json_text": _json,
    "sqlite": _sqlite,
}


def show(value: Any, limit: int = 60) -> str:
    """A value for a report line: its repr, cut short in the middle when long."""
    text = repr(bytes(value) if isinstance(value, memoryview | bytearray) else value)
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} … {text[-half:]} ({len(text)} chars)"
