"""The comparison rules are strict: the matrix can only be trusted if a changed value never
compares equal. Pure functions, no database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from tests.conformance.canonical import Canonical
from tests.conformance.outcomes import entity_contract

SAME = [
    ("float", float("nan"), "NaN"),  # every NaN is one NaN
    ("float", 0.1, Decimal("0.1")),  # a Decimal that is the double's shortest text
    ("decimal", Decimal("1.10"), 1.1),  # a double names the decimal of its shortest text
    ("int", 2**63 - 1, "9223372036854775807"),
    ("timestamptz", "2024-06-30 12:34:56.789012+05:30", "2024-06-30T07:04:56.789012Z"),
    ("timestamptz", "1970-01-01 00:00:00+00", dt.datetime(1970, 1, 1)),  # no zone: UTC
    ("date", "0044-03-15 BC", "0044-03-15 (BC)"),  # PostgreSQL's and DuckDB's BC
    ("time", "24:00:00", dt.timedelta(hours=24)),
    ("duration", "-838:59:59.000000", -dt.timedelta(hours=838, minutes=59, seconds=59)),
    ("json", '{"a": 1.10}', '{"a":1.1}'),  # documents compare parsed
    ("bits:10", b"\x02\x81", "1010000001"),
    ("date", "0000-00-00", "0000-00-00"),  # MariaDB's zero date
    ("timestamp", "0000-00-00 00:00:00", "0000-00-00 00:00:00.000000"),
    # Iceberg's values, as Arrow gives them: a timestamptz aware in UTC, a time of day, an
    # unsigned bigint in a decimal(20, 0)
    (
        "timestamptz",
        "2024-06-30 12:34:56.789012+05:30",
        dt.datetime(2024, 6, 30, 7, 4, 56, 789012, dt.UTC),
    ),
    ("time", "23:59:59.999999", dt.time(23, 59, 59, 999999)),
    ("int", 2**64 - 1, Decimal("18446744073709551615")),
]

DIFFERENT = [
    ("float", -0.0, 0.0),
    ("float", 3.4028234663852886e38, 3.4028235e38),  # a real's text read as a double
    ("decimal", Decimal("12345678901234567890.123456789"), 1.2345678901234567e19),
    ("decimal", Decimal("1E-39"), Decimal("0E-10")),
    ("int", 2**64 - 1, 1.8446744073709552e19),
    ("text", "a  ", "a"),
    ("text", "", None),
    ("bytes", b"", None),
    ("bytes", b"\x00\xff", "00ff"),
    ("bool", True, "true"),
    ("timestamp", "0044-03-15 12:00:00 BC", "0044-03-15 12:00:00"),
    ("timestamp", "infinity", None),
    ("date", "2024-01-01", dt.datetime(2024, 1, 1)),  # a date-time is no date
    ("time", "12:00:00+05:30", "12:00:00"),
    ("json", '{"a": true}', '{"a": 1}'),  # booleans are not numbers
    ("json", "null", None),  # a JSON null is not SQL NULL
    ("sqlite", 1, "1"),  # storage classes stay apart
    ("sqlite", b"\x01", "01"),
    ("bits:10", b"\x02\x81", "0281"),
    ("timestamp", "2024-01-01 00:00:00", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),  # an instant
]


@pytest.mark.parametrize(("kind", "one", "other"), SAME)
def test_the_same_value_in_two_forms_is_equal(kind: str, one: Any, other: Any) -> None:
    canonical = Canonical()
    assert canonical.of(kind, one) == canonical.of(kind, other)


@pytest.mark.parametrize(("kind", "one", "other"), DIFFERENT)
def test_a_changed_value_is_never_equal(kind: str, one: Any, other: Any) -> None:
    canonical = Canonical()
    assert canonical.of(kind, one) != canonical.of(kind, other)


def test_the_entity_contract_trims_texts_and_empties_only() -> None:
    assert entity_contract("text", "a  ", nullable=True) == "a"
    assert entity_contract("text", "   ", nullable=True) is None
    assert entity_contract("text", "", nullable=False) == ""
    assert entity_contract("bytes", b"", nullable=True) is None
    assert entity_contract("json", '"  spaced  "', nullable=True) == '"  spaced  "'
    assert entity_contract("json", "null", nullable=True) is None
    assert entity_contract("decimal", Decimal("0"), nullable=True) == Decimal("0")
