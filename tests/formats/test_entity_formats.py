"""The entity record format and file names, checked against SPEC.md's rules."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.errors import FormatError
from tidegate.formats.jsonl import entity_record, json_value
from tidegate.formats.naming import EntityFileName

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
SNAPSHOT = dt.datetime(2019, 7, 25, 11, 6, 4, 740615, tzinfo=UTC)


def test_a_record_has_every_field_as_specified() -> None:
    line = entity_record(
        "ACCOUNT",
        SNAPSHOT,
        ["4721"],
        {
            "ci_acct": [
                {
                    "acct_id": "4721",
                    "name": "Ada   ",
                    "note": None,
                    "empty": "",
                    "big": Decimal("123456789012345678901234567890.000000001"),
                    "opened": dt.datetime(2019, 7, 1, 12, 0),  # naive: source zone
                    "closed": dt.datetime(2019, 7, 1, 12, 0, 5, 7, tzinfo=UTC),
                    "day": dt.date(2019, 7, 1),
                    "flag": True,
                    "ratio": 0.1,
                    "blob": b"\x00\xff",
                    "count": 3,
                }
            ],
            "ci_acct_char": [],
            "ci_acct_per": [{"acct_id": "4721", "per_id": "1"}, {"acct_id": "4721", "per_id": "2"}],
        },
        BERLIN,
    )
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.startswith(
        b'{"OBJ":"ACCOUNT","TIMESTAMP":"2019-07-25T11:06:04.740615Z","PK1":"4721","DATA":'
    )
    record = json.loads(line, parse_float=Decimal)
    row = record["DATA"]["ci_acct"][0]
    assert row == {
        "acct_id": "4721",
        "name": "Ada",
        "note": "",
        "empty": "",
        "big": Decimal("123456789012345678901234567890.000000001"),
        "opened": "2019-07-01T10:00:00.000000Z",
        "closed": "2019-07-01T12:00:05.000007Z",
        "day": "2019-07-01",
        "flag": True,
        "ratio": Decimal("0.1"),
        "blob": "00ff",
        "count": 3,
    }
    assert record["DATA"]["ci_acct_char"] == []
    assert len(record["DATA"]["ci_acct_per"]) == 2
    assert "DELETED" not in record and "PK2" not in record


def test_a_deleted_entity_has_empty_tables_and_composite_keys_are_strings() -> None:
    line = entity_record(
        "ORDER", SNAPSHOT, [7, Decimal("1.50"), "x"], {"orders": [], "lines": []}, UTC, deleted=True
    )
    record = json.loads(line)
    assert (record["PK1"], record["PK2"], record["PK3"]) == ("7", "1.50", "x")
    assert record["DELETED"] is True and record["DATA"] == {"orders": [], "lines": []}
    assert list(record)[:6] == ["OBJ", "TIMESTAMP", "PK1", "PK2", "PK3", "DELETED"]


@given(st.decimals(allow_nan=False, allow_infinity=False, places=12))
def test_exact_numerics_keep_every_digit(value: Decimal) -> None:
    line = entity_record("E", SNAPSHOT, [1], {"t": [{"v": value}]}, UTC)
    assert json.loads(line, parse_float=Decimal)["DATA"]["t"][0]["v"] == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ""), ("", ""), ("a  ", "a"), ("  lead", "  lead"), (5, 5), (False, False)],
)
def test_values(value: object, expected: object) -> None:
    assert json_value(value, UTC) == expected


@given(
    kind=st.sampled_from(["INIT_EXPORT", "INC_EXPORT"]),
    run=st.integers(1, 10**6),
    thread=st.integers(1, 64),
    seq=st.integers(1, 999),
    # Any table name may name an entity: spaces, underscores, "/", a leading ".", unicode.
    entity=st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1, max_size=20),
    prefix=st.sampled_from(["", "P1", "nightly-2"]),
)
def test_entity_file_names_round_trip(
    kind: str, run: int, thread: int, seq: int, entity: str, prefix: str
) -> None:
    subject = EntityFileName.initial_subject(entity, prefix) if kind == "INIT_EXPORT" else ""
    name = EntityFileName(
        kind,
        run,
        thread,
        64,
        SNAPSHOT.replace(microsecond=0),
        seq,  # type: ignore[arg-type]
        subject,
    )
    formatted = name.format()
    assert EntityFileName.parse(formatted) == name
    assert "/" not in formatted and not formatted.startswith(".")


def test_entity_file_names_look_as_specified() -> None:
    stamp = dt.datetime(2026, 11, 24, 23, 5, 9, tzinfo=UTC)
    first = EntityFileName(
        "INIT_EXPORT", 3, 1, 4, stamp, subject=EntityFileName.initial_subject("ACCOUNT", "P1")
    )
    assert first.format() == "INIT_EXPORT_P1_ACCOUNT_3_1_4_20261124230509.json.gz"
    second = EntityFileName("INC_EXPORT", 12, 2, 4, stamp, seq=2)
    assert second.format() == "INC_EXPORT_12_2_4_20261124230509_2.json.gz"
    with pytest.raises(FormatError):
        EntityFileName.parse("INC_EXPORT_ACCOUNT_12_2_4_20261124230509.json.gz")
