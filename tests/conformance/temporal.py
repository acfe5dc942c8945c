"""Dates and times as exact integers, from the driver objects and the texts databases print.

Python's `datetime` holds neither years before 1 nor after 9999, nor PostgreSQL's
`infinity` or `24:00:00`, so every date-time is turned into integers here: days since
1970-01-01 in the proleptic Gregorian calendar (astronomical years: 1 BC is year 0) and
microseconds. Texts are read in the forms PostgreSQL, DuckDB, SQLite and MariaDB print:
`YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z|±HH[:MM[:SS]]]`, years of any length, `BC` (PostgreSQL)
or `(BC)` (DuckDB), `infinity` and `-infinity`.

Each function returns None for a text it cannot read exactly; the caller then keeps the
text as it is, so it can only equal the same text. MariaDB's zero dates are kept as one
text of their own (`zero date 0000-00-00 00:00:00.000000`).
"""

from __future__ import annotations

import datetime as dt
import re

MICROS_PER_DAY = 86_400_000_000
INFINITIES = {"infinity": "infinity", "-infinity": "-infinity"}

_DATE = r"(?P<year>\d{4,})-(?P<month>\d\d)-(?P<day>\d\d)"
_TIME = r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)(?:\.(?P<fraction>\d{1,6}))?"
_ZONE = r"(?P<zone>Z|[+-]\d\d(?::?\d\d(?::?\d\d)?)?)"
_MOMENT = re.compile(rf"{_DATE}(?:[ T]{_TIME})?{_ZONE}?")
_CLOCK = re.compile(rf"{_TIME}{_ZONE}?")
_DURATION = re.compile(r"(?P<sign>-?)(?P<hours>\d+):(?P<minutes>\d\d):(?P<seconds>\d\d)"
                       r"(?:\.(?P<fraction>\d{1,6}))?")  # fmt: skip
_EPOCH = 719_468  # days from 0000-03-01 to 1970-01-01


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm, which
    holds for every year, 0 and negative included)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - _EPOCH


def _without_bc(text: str) -> tuple[str, bool]:
    """The text without its BC mark (PostgreSQL's trailing ` BC`, DuckDB's ` (BC)` after
    the date), and whether it had one."""
    for mark in (" (BC)", " BC"):
        if mark in text:
            return text.replace(mark, "", 1), True
    return text, False


def _valid(year: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    lengths = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    return day <= lengths[month - 1]


def _fraction(text: str | None) -> int:
    return int((text or "").ljust(6, "0"))


def _zone_seconds(zone: str | None) -> int | None:
    """An offset in seconds east of UTC; None when the text has none."""
    if zone is None:
        return None
    if zone == "Z":
        return 0
    digits = zone[1:].replace(":", "")
    hours, minutes, seconds = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    total = hours * 3600 + minutes * 60 + seconds
    return -total if zone[0] == "-" else total


Moment = tuple[int, int | None, int | None]
"""(days, microseconds of the day or None for a date, offset seconds east or None)."""


def parse_moment(text: str) -> Moment | str | None:
    """A date or date-time text as a Moment, `infinity` / `-infinity`, or None when it is
    not one of the forms read here."""
    text = text.strip()
    if text in INFINITIES:
        return INFINITIES[text]
    text, bc = _without_bc(text)
    match = _MOMENT.fullmatch(text)
    if match is None:
        return None
    year, month, day = (int(match[name]) for name in ("year", "month", "day"))
    if bc:
        year = 1 - year
    if month == 0 or day == 0:
        return _zero_date(match, year, month, day)
    if not _valid(year, month, day):
        return None
    days = days_from_civil(year, month, day)
    if match["hour"] is None:
        return (days, None, None) if match["zone"] is None else None
    hour, minute, second = (int(match[name]) for name in ("hour", "minute", "second"))
    if hour > 24 or minute > 59 or second > 59:
        return None
    micros = ((hour * 60 + minute) * 60 + second) * 1_000_000 + _fraction(match["fraction"])
    return days, micros, _zone_seconds(match["zone"])


def _zero_date(match: re.Match[str], year: int, month: int, day: int) -> str:
    """MariaDB's zero date (`0000-00-00`, or a zero month or day) as one text, whatever
    the fraction digits it is printed with."""
    clock = ":".join(match[name] or "00" for name in ("hour", "minute", "second"))
    return f"zero date {year:04d}-{month:02d}-{day:02d} {clock}.{_fraction(match['fraction']):06d}"


def parse_clock(text: str) -> tuple[int, int | None] | None:
    """A time of day (`24:00:00` included) as (microseconds, offset seconds or None)."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        return None
    hour, minute, second = (int(match[name]) for name in ("hour", "minute", "second"))
    micros = ((hour * 60 + minute) * 60 + second) * 1_000_000 + _fraction(match["fraction"])
    if minute > 59 or second > 59 or micros > MICROS_PER_DAY:
        return None
    return micros, _zone_seconds(match["zone"])


def parse_duration(text: str) -> int | None:
    """A MariaDB TIME text (`-838:59:59.000000`) as signed microseconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    hours, minutes, seconds = (int(match[name]) for name in ("hours", "minutes", "seconds"))
    if minutes > 59 or seconds > 59:
        return None
    micros = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + _fraction(match["fraction"])
    return -micros if match["sign"] else micros


def moment_of(value: dt.datetime | dt.date) -> Moment:
    """A driver's date or datetime as a Moment."""
    days = days_from_civil(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        return days, None, None
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    offset = value.utcoffset()
    return days, micros, None if offset is None else int(offset.total_seconds())


def clock_of(value: dt.time) -> tuple[int, int | None]:
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
    offset = value.utcoffset()
    return micros + value.microsecond, None if offset is None else int(offset.total_seconds())


def duration_of(value: dt.timedelta) -> int:
    return value // dt.timedelta(microseconds=1)
