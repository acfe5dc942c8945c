"""Round trips of the pure format code: names, manifests, file-safe table names, values."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.errors import FormatError
from tidegate.formats import csvrows, manifest
from tidegate.formats.csvrows import csv_chunks, value_text
from tidegate.formats.naming import ExportName, file_safe
from tidegate.formats.tablezip import TableZipWriter

UTC = dt.UTC
moments = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 1, 1), timezones=st.just(UTC)
).map(lambda m: m.replace(microsecond=0))


@given(key=st.integers(0, 2**63 - 1), moment=moments)
def test_export_name_round_trip(key: int, moment: dt.datetime) -> None:
    name = ExportName(key, moment)
    assert ExportName.parse(name.format()) == name


@pytest.mark.parametrize(
    "text",
    [
        "export_1",
        "export_x_2026_01_01_00_00_00",
        "export_1_2026_13_01_00_00_00",
        "export_1_2026_01_01_00_00_00/",
    ],
)
def test_bad_export_names_are_refused(text: str) -> None:
    with pytest.raises(FormatError):
        ExportName.parse(text)


@given(st.text(min_size=1, max_size=40))
def test_file_safe_names_cannot_name_a_path(table: str) -> None:
    safe = file_safe(table)
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert not any(ord(c) < 32 for c in safe)


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_file_safe_is_one_to_one(a: str, b: str) -> None:
    if a != b:
        assert file_safe(a) != file_safe(b)


@given(
    key_from=st.integers(0, 2**62),
    key_span=st.integers(0, 2**62 - 1),
    moment=moments,
    kind=st.sampled_from(["snapshot", "incremental"]),
    restart=st.sampled_from([None, "beginning", "from", "reexport"]),
    names=st.lists(
        st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=15), max_size=4
    ),
)
def test_manifest_round_trip(
    key_from: int,
    key_span: int,
    moment: dt.datetime,
    kind: str,
    restart: str | None,
    names: list[str],
) -> None:
    entries = tuple(
        manifest.TableEntry(n, file_safe(n) + ".csv", i, i * 2, i % 2 == 0)
        for i, n in enumerate(names)
    )
    members = tuple(manifest.MemberSize(f"{i}.csv", 2**63 - 1 - i) for i in range(len(entries)))
    original = manifest.Manifest(
        created=moment,
        schema_version="abc123",
        tidegate_version="0.1.0",
        hwm_from=manifest.HighWaterMark(key_from, moment),
        hwm_to=manifest.HighWaterMark(key_from + key_span, moment),
        max_data_time=moment,
        kind=kind,
        stream=2,
        sequence=7,
        min_data_time=moment,  # type: ignore[arg-type]
        restart=restart,
        since=moment if restart else None,
        tables=entries,  # type: ignore[arg-type]
        members=members,
    )
    assert manifest.parse(manifest.render(original), "x.xml") == original


def test_manifest_starts_with_the_established_elements() -> None:
    moment = dt.datetime(2018, 3, 15, 5, 26, 40, tzinfo=UTC)
    text = manifest.render(
        manifest.Manifest(
            moment,
            "v",
            "0.1.0",
            manifest.HighWaterMark(13, moment),
            manifest.HighWaterMark(200074, moment),
            moment,
            "incremental",
            1,
            1,
            moment,
        )
    ).decode()
    assert text.splitlines()[:7] == [
        "<info>",
        "<created-ts>1521091600</created-ts>",
        "<gim-schema-version>v</gim-schema-version>",
        "<gim-version>0.1.0</gim-version>",
        '<hwm-from audit-key="13" created-ts="1521091600"/>',
        '<hwm-to audit-key="200074" created-ts="1521091600"/>',
        "<max-data-ts>1521091600</max-data-ts>",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (12, "12"),
        (0.1, "0.1"),
        (float("nan"), "NaN"),
        (Decimal("1E+3"), "1000"),
        (Decimal("12345678901234567890.123456789"), "12345678901234567890.123456789"),
        (dt.datetime(2026, 1, 2, 3, 4, 5, 6), "2026-01-02 03:04:05.000006"),
        (
            dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-01-02 01:04:05.000000+00:00",
        ),
        (dt.date(2024, 2, 29), "2024-02-29"),
        (b"\x00\xff", "00ff"),
        (dt.timedelta(hours=-1, seconds=1), "-00:59:59.000000"),
        ({"a": [1]}, '{"a":[1]}'),
    ],
)
def test_value_text(value: object, text: str | None) -> None:
    assert value_text(value) == text


@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.text(), st.integers()), min_size=2, max_size=2),
        max_size=30,
    )
)
def test_csv_round_trips_through_a_standard_reader(rows: list[list[object]]) -> None:
    text = "".join(csv_chunks(["a", "b"], rows))
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == ["a", "b"]
    assert parsed[1:] == [["" if v is None else str(v) for v in row] for row in rows]


def test_zip_members_carry_sha1_files_and_the_zip_digest_is_of_its_bytes() -> None:
    import hashlib

    buffer = io.BytesIO()
    writer = TableZipWriter(buffer, dt.datetime(2026, 1, 1, tzinfo=UTC))
    writer.add("t.csv", [b"a,b\n", b"1,2\n"])
    result = writer.close()
    data = buffer.getvalue()
    assert result.sha1 == hashlib.sha1(data).hexdigest() and result.size == len(data)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["t.csv", "t.csv.sha1"]
    digest = hashlib.sha1(b"a,b\n1,2\n").hexdigest()
    assert archive.read("t.csv.sha1") == f"{digest}  t.csv\n".encode()


@given(
    st.lists(st.lists(st.text(), min_size=1, max_size=3), max_size=20),
    st.lists(st.integers(1, 50), max_size=10),
)
def test_record_counter_counts_csv_records_however_the_stream_is_cut(
    rows: list[list[str]], cuts: list[int]
) -> None:
    from tidegate.formats.csvrows import RecordCounter

    data = "".join(csv_chunks(["a"], rows)).encode()
    counter = RecordCounter()
    found, position = 0, 0
    for size in [*cuts, len(data)]:
        found += counter.feed(data[position : position + size])
        position += size
    assert found == len(rows) + 1  # and the header


def test_a_sha1_line_for_a_non_ascii_file_name_reads_back() -> None:
    """Regression: checksum lines were read as ASCII, so a table named with a letter such as
    'Ü' or a no-break space failed `verify` (found by the name fuzz test)."""
    from tidegate.formats.tablezip import parse_sha1_line, sha1_line

    for name in ("Ünï.csv", "\xa0.csv", "日本.deleted.csv"):
        assert parse_sha1_line(sha1_line("a" * 40, name), name, "here") == "a" * 40


csv_rows = st.lists(
    st.lists(st.text(alphabet='ab",\n', max_size=30), min_size=1, max_size=4),
    min_size=1,
    max_size=30,
)


def _csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue().encode()


@given(rows=csv_rows, data=st.data())
def test_record_meter_never_refuses_records_within_its_limit(
    rows: list[list[str]], data: st.DataObject
) -> None:
    """However the stream is cut, records of at most `limit` bytes (line end included)
    pass, quoted line ends and doubled quotes and all."""
    raw = _csv_bytes(rows)
    longest = max(len(_csv_bytes([row])) for row in rows)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    meter = csvrows.RecordMeter(longest)
    for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        meter.feed(raw[start:end])
    assert meter.longest >= longest  # a bound of every record, as the exporter records it


@given(rows=csv_rows)
def test_record_meter_measures_each_record_fed_byte_by_byte(rows: list[list[str]]) -> None:
    """Fed one byte at a time every record spans chunks: the meter refuses exactly when
    the longest record is longer than its limit."""
    raw = _csv_bytes(rows)
    longest = max(len(_csv_bytes([row])) for row in rows)
    for limit, refused in ((longest, False), (longest - 1, True)):
        meter = csvrows.RecordMeter(limit)
        try:
            for i in range(len(raw)):
                meter.feed(raw[i : i + 1])
        except csvrows.RecordTooLong:
            assert refused
        else:
            assert not refused
