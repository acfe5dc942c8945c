"""Initial entity export on every source, checked by an independent gzip + json reader."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

import tidegate
from tests.conftest import Source
from tidegate import api
from tidegate.entities import snapshot
from tidegate.entities.initial import MAX_FILES, files_cap
from tidegate.sources.postgresql import PostgresSource

Micro = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def order_tables() -> list[sa.Table]:
    md = sa.MetaData()
    orders = sa.Table(
        "orders",
        md,
        sa.Column("region", sa.String(10), primary_key=True),
        sa.Column("order_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.String(100)),
        sa.Column("total", sa.Numeric(30, 8)),
        sa.Column("placed", Micro),
        sa.Column("ratio", sa.Double),
    )
    lines = sa.Table(
        "order_lines",
        md,
        sa.Column("region", sa.String(10), primary_key=True),
        sa.Column("order_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sku", sa.String(20)),
        sa.ForeignKeyConstraint(["region", "order_no"], ["orders.region", "orders.order_no"]),
    )
    notes = sa.Table(
        "order_notes",
        md,
        sa.Column("region", sa.String(10), primary_key=True),
        sa.Column("order_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(10), primary_key=True),
        sa.Column("body", sa.Text),
        sa.ForeignKeyConstraint(["region", "order_no"], ["orders.region", "orders.order_no"]),
    )
    return [orders, lines, notes]


def fill(source: Source, count: int, seed: int = 1) -> None:
    orders, lines, notes = order_tables()
    rng = random.Random(seed)
    with source.engine().begin() as conn:
        for number in range(1, count + 1):
            region = rng.choice(["EU", "US", "ASIA"])
            conn.execute(
                orders.insert(),
                [
                    {
                        "region": region,
                        "order_no": number,
                        "note": rng.choice(
                            [None, "", "plain", "trailing  ", 'q"uote,comma', "ü 日本"]
                        ),
                        "total": Decimal(rng.randint(-(10**12), 10**12)) / 1000,
                        "placed": dt.datetime(2026, 1, 1, 12, 0, 0, rng.randint(0, 999_999)),
                        "ratio": rng.choice([0.1, 1e20, None]),
                    }
                ],
            )
            for line in range(rng.randint(0, 3)):
                conn.execute(
                    lines.insert(),
                    [
                        {
                            "region": region,
                            "order_no": number,
                            "line_no": line + 1,
                            "sku": f"S{line}",
                        }
                    ],
                )
            if rng.random() < 0.3:
                conn.execute(
                    notes.insert(),
                    [{"region": region, "order_no": number, "kind": "gift", "body": "x\ny"}],
                )


def enabled_orders(source: Source, count: int, *overrides: str) -> tidegate.Config:
    """The order tables with `count` orders, initialized, and ORDERS enabled with ongoing
    capture (before any initial export, as the docs say); returns the config."""
    source.create(*order_tables())
    fill(source, count)
    config = source.config(*overrides)
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    return config


def read_run(folder: Path, run: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's manifest and its records, in apply order, each file's sha1 and count
    checked (standard library only)."""
    manifest = json.loads((folder / f"INIT_EXPORT_{run}.manifest.json").read_text())
    records = []
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert hashlib.sha1(data).hexdigest() == entry["sha1"], entry["name"]
        lines = gzip.decompress(data).decode().splitlines()
        assert len(lines) == entry["records"], entry["name"]
        records += [json.loads(line, parse_float=Decimal) for line in lines]
    return manifest, records


def expected(value: Any) -> Any:
    """A source value as the entity format must write it."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value.rstrip(" ")
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def source_entities(source: Source) -> dict[tuple[str, ...], dict[str, list[dict[str, Any]]]]:
    """The source's entities, read with the driver: key -> table -> rows (sorted)."""
    engine = source.engine()
    prep = engine.dialect.identifier_preparer
    entities: dict[tuple[str, ...], dict[str, list[dict[str, Any]]]] = {}
    with engine.connect() as conn:
        for table in ("orders", "order_lines", "order_notes"):
            name = prep.quote(table)
            if source.schema:
                name = f"{prep.quote(source.schema)}.{name}"
            result = conn.exec_driver_sql(f"SELECT * FROM {name}")
            columns = list(result.keys())
            for raw in result:
                row = {c: expected(v) for c, v in zip(columns, raw, strict=True)}
                key = (str(row["region"]), str(row["order_no"]))
                entity = entities.setdefault(
                    key, {"orders": [], "order_lines": [], "order_notes": []}
                )
                entity[table].append(row)
    if source.dialect == "sqlite":  # SQLite keeps DATETIME as text: compare as exported
        for entity in entities.values():
            for row in entity["orders"]:
                if row["placed"]:
                    placed = dt.datetime.fromisoformat(row["placed"])
                    row["placed"] = placed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return entities


@pytest.fixture(params=["fast", "python"])
def reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the reader makes records: the fast one (the sqlite3 shell, PostgreSQL's
    row_to_json) where it applies, and the Python path every source has."""
    if request.param == "python":
        monkeypatch.setenv("TIDEGATE_NO_CLIENTS", "1")
        monkeypatch.setattr(PostgresSource, "row_json", lambda *args: None)
    return str(request.param)


@pytest.mark.parametrize("threads", [1, 3])
def test_initial_export_rebuilds_every_entity(source: Source, threads: int, reading: str) -> None:
    source.create(*order_tables())
    fill(source, 60)
    config = source.config()
    tidegate.init(config)
    assert api.entities_enable(config, ["ORDERS"], ongoing=True) == ["ORDERS"]
    result = api.export_initial(config, threads=threads)
    assert result is not None and result.entities == ["ORDERS"]
    folder = source.tmp_path / "exports" / "entities"
    manifest, records = read_run(folder, result.run)
    assert manifest["records"] == 60 and len({f["thread"] for f in manifest["files"]}) == threads
    # The run's start is to the millisecond, as the sqlite3 shell's record times are: no
    # record is older than its run's start (a loader relies on it).
    assert manifest["created"].endswith("000Z")
    assert all(record["TIMESTAMP"] >= manifest["created"] for record in records)
    got = {}
    for record in records:
        assert record["OBJ"] == "ORDERS" and record["TIMESTAMP"].endswith("Z")
        assert "PK3" not in record and "DELETED" not in record
        key = (record["PK1"], record["PK2"])
        assert key not in got, "an entity was exported twice"
        for rows in record["DATA"].values():
            rows.sort(key=lambda row: json.dumps(row, sort_keys=True, default=str))
        got[key] = record["DATA"]
    want = source_entities(source)
    for entity in want.values():
        for rows in entity.values():
            rows.sort(key=lambda row: json.dumps(row, sort_keys=True, default=str))
    assert got == want
    status = {s.entity.name: s for s in api.entities_list(config)}["ORDERS"]
    assert (status.initial_status, status.initial_run) == ("complete", result.run)
    assert api.export_initial(config) is None  # nothing left to do


def test_records_per_file_rotates_files_with_sequence_numbers(sqlite_source: Source) -> None:
    sqlite_source.create(*order_tables())
    fill(sqlite_source, 25)
    config = sqlite_source.config()
    tidegate.init(config)
    result = api.export_initial(config, ["ORDERS"], threads=2, records_per_file=5, prefix="P1")
    assert result is not None and result.raised_from is None
    names = [f.name for f in result.files]
    assert all(name.startswith(f"INIT_EXPORT_P1_ORDERS_{result.run}_") for name in names)
    assert sum(f.records for f in result.files) == 25
    assert all(f.records <= 5 for f in result.files)
    seconds = [f for f in result.files if f.seq > 1]
    assert seconds and all(f.name.endswith(f"_{f.seq}.json.gz") for f in seconds)
    assert all(not f.name.endswith("_1.json.gz") for f in result.files if f.seq == 1)


def test_a_run_never_writes_more_than_about_500_files(sqlite_source: Source) -> None:
    assert files_cap(0, 10**9, 4, 3) == 0
    assert files_cap(10, 100, 4, 1) == 10
    assert files_cap(1, 10_000, 4, 5) == 21  # 10,000 / (500 - 20)
    sqlite_source.create(*order_tables())
    fill(sqlite_source, 600)
    config = sqlite_source.config()
    tidegate.init(config)
    result = api.export_initial(config, ["ORDERS"], threads=1, records_per_file=1)
    assert result is not None
    assert result.raised_from == 1 and result.records_per_file == 2
    assert len(result.files) <= MAX_FILES
    assert sum(f.records for f in result.files) == 600


def test_every_type_is_written_as_the_format_says(source: Source, reading: str) -> None:
    """Values of each type, and NULLs, read in [source] timezone where naive: the server
    shapes many of them in the query (entities/columns.py), so each is checked here."""
    # MariaDB needs zone tables for another zone; the sqlite3 shell writes date-times only
    # for a UTC source.
    utc = source.dialect == "mysql" or (source.dialect == "sqlite" and reading == "fast")
    zone = "UTC" if utc else "Europe/Paris"
    md = sa.MetaData()
    columns = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.String(20)),
        sa.Column("amount", sa.Numeric(30, 8)),
        sa.Column("ratio", sa.Double),
        sa.Column("at", Micro),
        sa.Column("day", sa.Date),
        sa.Column("raw", sa.LargeBinary),
    ]
    row: dict[str, Any] = {
        "id": 1,
        "note": "a  ",
        "amount": Decimal("1234.5"),
        "ratio": 0.1,
        "at": dt.datetime(2026, 7, 1, 12, 0, 0),
        "day": dt.date(2026, 2, 3),
        "raw": b"\x00\xff",
    }
    want: dict[str, Any] = {
        "id": 1,
        "note": "a",
        "amount": Decimal("1234.5"),
        "ratio": Decimal("0.1"),
        "at": "2026-07-01T10:00:00.000000Z" if zone != "UTC" else "2026-07-01T12:00:00.000000Z",
        "day": "2026-02-03",
        "raw": "00ff",
    }
    if source.dialect != "sqlite":  # SQLite keeps NUMERIC as a float
        row["amount"] = want["amount"] = Decimal("12345678901234567890.12345678")
    if source.dialect != "mysql":  # MariaDB has no infinite DOUBLE
        columns.append(sa.Column("huge", sa.Double))
        row["huge"], want["huge"] = 1e20, Decimal("1e20")
    if source.dialect == "postgresql":
        columns += [
            sa.Column("moment", sa.DateTime(timezone=True)),
            sa.Column("doc", sa.JSON),
            sa.Column("flag", sa.Boolean),
            sa.Column("odd", sa.Numeric),
        ]
        row |= {
            "moment": dt.datetime(2026, 7, 1, 12, 0, 0, 5, tzinfo=dt.UTC),
            "doc": {"a": [1, "x\ny"]},
            "flag": True,
            "odd": Decimal("NaN"),
        }
        want |= {
            "moment": "2026-07-01T12:00:00.000005Z",
            "doc": {"a": [1, "x\ny"]},
            "flag": True,
            "odd": "NaN",
        }
    table = sa.Table("things", md, *columns)
    source.create(table)
    with source.engine().begin() as conn:
        empty = {name: None for name in row}
        # Row 3 is written `null` by a fast path (an infinity in SQLite, a JSON document's
        # own null in PostgreSQL): that entity goes through the Python path.
        odd = {"id": 3} | ({"huge": float("inf")} if "huge" in row else {})
        odd |= {"doc": {"n": None}} if "doc" in row else {}
        conn.execute(table.insert(), [row, empty | {"id": 2}, empty | odd])
    config = source.config(f"source.timezone={zone}")
    tidegate.init(config)
    result = api.export_initial(config, ["THINGS"], threads=1)
    assert result is not None
    _manifest, records = read_run(source.tmp_path / "exports" / "entities", result.run)
    got = {record["PK1"]: record["DATA"]["things"] for record in records}
    blank = {name: "" for name in want if name != "id"}
    third = blank | {"id": 3} | ({"huge": "Infinity"} if "huge" in want else {})
    third |= {"doc": {"n": None}} if "doc" in want else {}  # a document as it is
    assert got == {"1": [want], "2": [blank | {"id": 2}], "3": [third]}


def test_a_date_time_root_key_pages_through_every_entity(source: Source, reading: str) -> None:
    """More roots than one batch holds, keyed by a date-time: every entity once."""
    md = sa.MetaData()
    shifts = sa.Table(
        "shifts",
        md,
        sa.Column("starts", Micro, primary_key=True),
        sa.Column("note", sa.String(20)),
    )
    source.create(shifts)
    first = dt.datetime(2026, 1, 1, 0, 0, 0, 500)
    count = snapshot.BATCH_ROOTS + 300
    with source.engine().begin() as conn:
        conn.execute(
            shifts.insert(),
            [{"starts": first + dt.timedelta(minutes=i), "note": "n"} for i in range(count)],
        )
    config = source.config()
    tidegate.init(config)
    result = api.export_initial(config, ["SHIFTS"], threads=2)
    assert result is not None
    _manifest, records = read_run(source.tmp_path / "exports" / "entities", result.run)
    starts = [record["DATA"]["shifts"][0]["starts"] for record in records]
    assert len(starts) == len(set(starts)) == count
    assert starts[0] == "2026-01-01T00:00:00.000500Z"
