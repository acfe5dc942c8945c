"""Ongoing entity export: initial + ongoing runs rebuild the source; the queue rules."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import random
import shutil
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tidegate
from tests.conftest import Source
from tests.entities.test_initial import enabled_orders, fill, order_tables, source_entities
from tidegate import api
from tidegate.entities import snapshot
from tidegate.entities.ongoing import run_limit


def apply_runs(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Apply every complete run, initial runs first, then ongoing ones, each in run order
    (standard library only): the latest record of an entity wins, DELETED removes it."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in ("INIT_EXPORT", "INC_EXPORT"):
        manifests = sorted(
            folder.glob(f"{kind}_*.manifest.json"),
            key=lambda p: int(p.name.split("_")[-1].split(".")[0]),
        )
        for path in manifests:
            manifest = json.loads(path.read_text())
            for entry in manifest["files"]:
                data = (folder / entry["name"]).read_bytes()
                assert hashlib.sha1(data).hexdigest() == entry["sha1"]
                for line in gzip.decompress(data).decode().splitlines():
                    record = json.loads(line, parse_float=Decimal)
                    key = (record["PK1"], record["PK2"])
                    if record.get("DELETED"):
                        assert all(rows == [] for rows in record["DATA"].values())
                        state.pop(key, None)
                    else:
                        state[key] = record["DATA"]
    return state


def normalised(entities: dict[Any, dict[str, list[dict[str, Any]]]]) -> dict[Any, Any]:
    return {
        key: {
            table: sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)
            for table, rows in data.items()
        }
        for key, data in entities.items()
    }


def change_randomly(source: Source, seed: int) -> None:
    orders, lines, notes = order_tables()
    rng = random.Random(seed)
    with source.engine().begin() as conn:
        keys = [tuple(row) for row in conn.execute(sa.select(orders.c.region, orders.c.order_no))]
        for region, number in rng.sample(keys, min(10, len(keys))):
            action = rng.choice(["update", "delete", "line", "drop-lines"])
            where = (orders.c.region == region) & (orders.c.order_no == number)
            if action == "update":
                conn.execute(orders.update().where(where).values(note=f"changed {seed}"))
            elif action == "delete":
                for child in (lines, notes):
                    conn.execute(
                        child.delete().where(
                            (child.c.region == region) & (child.c.order_no == number)
                        )
                    )
                conn.execute(orders.delete().where(where))
            elif action == "line":
                conn.execute(
                    lines.insert(),
                    [{"region": region, "order_no": number, "line_no": 90 + seed, "sku": "new"}],
                )
            else:
                conn.execute(
                    lines.delete().where((lines.c.region == region) & (lines.c.order_no == number))
                )
        conn.execute(
            orders.insert(),
            [
                {
                    "region": "NEW",
                    "order_no": 1000 + seed,
                    "note": "inserted",
                    "total": Decimal("1.5"),
                }
            ],
        )


def test_initial_then_ongoing_runs_rebuild_the_source(source: Source) -> None:
    config = enabled_orders(source, 40)
    api.export_initial(config, threads=2)
    for seed in range(3):
        change_randomly(source, seed)
        [result] = api.export_ongoing(config, threads=2)
        assert result.records > 0 and result.backlog == 0
    folder = source.tmp_path / "exports" / "entities"
    assert normalised(apply_runs(folder)) == normalised(source_entities(source))
    [empty] = api.export_ongoing(config)
    assert empty.records == 0 and empty.manifest == ""  # nothing queued: nothing written
    statuses = {s.entity.name: s for s in api.entities_list(config)}
    assert statuses["ORDERS"].queue_depth == 0


def test_an_entry_queued_during_a_run_stays_for_the_next(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders, _lines, _notes = order_tables()
    config = enabled_orders(sqlite_source, 5)
    with sqlite_source.engine().begin() as conn:
        conn.execute(orders.update().values(note="before the run"))
    original = snapshot.EntityReader.records_for

    def write_meanwhile(reader: snapshot.EntityReader, keys: Any) -> Any:
        with sqlite_source.engine().begin() as conn:
            conn.execute(orders.insert(), [{"region": "LATE", "order_no": 1, "note": "late"}])
        return original(reader, keys)

    monkeypatch.setattr(snapshot.EntityReader, "records_for", write_meanwhile)
    [first] = api.export_ongoing(config, threads=1)
    monkeypatch.undo()
    assert first.records == 5
    assert {s.entity.name: s for s in api.entities_list(config)}["ORDERS"].queue_depth == 1
    [second] = api.export_ongoing(config, threads=1)
    assert second.records == 1


def test_thread_limit_is_raised_to_clear_20_percent_and_100000() -> None:
    assert run_limit(0, 4, 10**7) == (None, None)
    assert run_limit(1000, 4, 1_000_000) == (200_000, 4000)  # 20% of the queue
    assert run_limit(1000, 4, 300_000) == (100_000, 4000)  # never fewer than 100,000
    assert run_limit(1000, 4, 50_000) == (50_000, 4000)  # ... unless fewer are queued
    assert run_limit(100_000, 4, 1_000_000) == (400_000, None)


@pytest.mark.slow
def test_auto_backlog_runs_until_the_queue_is_empty(sqlite_source: Source) -> None:
    md = sa.MetaData()
    items = sa.Table("item", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    sqlite_source.create(items)
    config = sqlite_source.config()
    tidegate.init(config)
    api.entities_enable(config, ["ITEM"], ongoing=True)
    with sqlite_source.engine().begin() as conn:
        conn.execute(items.insert(), [{"id": i} for i in range(130_000)])
    [limited] = api.export_ongoing(config, threads=1, thread_limit=10, auto_backlog=False)
    assert (limited.limit, limited.limit_raised_from) == (100_000, 10)
    assert limited.records == 100_000 and limited.backlog == 30_000
    runs = api.export_ongoing(config, threads=1, thread_limit=10, auto_backlog=True)
    assert [r.records for r in runs] == [30_000]
    assert {s.entity.name: s for s in api.entities_list(config)}["ITEM"].queue_depth == 0


def test_writers_during_the_initial_export_are_caught_by_the_next_ongoing_run(
    source: Source,
) -> None:
    config = enabled_orders(source, 200)
    stop = threading.Event()
    rounds = []

    def write() -> None:
        seed = 100
        while not stop.is_set():
            change_randomly(source, seed)
            rounds.append(seed)
            seed += 1
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        api.export_initial(config, threads=3)
    finally:
        stop.set()
        writer.join()
    assert rounds, "no write happened during the initial export"
    api.export_ongoing(config, threads=2)
    folder = source.tmp_path / "exports" / "entities"
    assert normalised(apply_runs(folder)) == normalised(source_entities(source))


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=4), threads=st.integers(1, 3))
def test_random_changes_between_runs_rebuild_the_source(
    source: Source, seeds: list[int], threads: int
) -> None:
    tables = order_tables()
    engine = source.engine()
    engine.connect().close()  # a SQLite source file must exist before tidegate opens it
    tidegate.uninstall(source.config())
    with engine.begin() as conn:
        for table in reversed(tables):
            table.drop(conn, checkfirst=True)
        for table in tables:
            table.create(conn)
    shutil.rmtree(source.tmp_path / "exports", ignore_errors=True)
    fill(source, 25, seed=seeds[0])
    config = source.config()
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    api.export_initial(config, threads=threads)
    for number, seed in enumerate(seeds):
        change_randomly(source, number * 1000 + seed % 1000)  # distinct new keys per round
        api.export_ongoing(config, threads=threads)
    folder = source.tmp_path / "exports" / "entities"
    assert normalised(apply_runs(folder)) == normalised(source_entities(source))


def test_a_date_time_root_key_finds_its_entity(source: Source) -> None:
    """A queued key comes back from JSON in the server's text form of a date-time; the
    entity must still be found (not reported deleted), and a deleted one reported so."""
    micro = sa.DateTime().with_variant(sa.dialects.mysql.DATETIME(fsp=6), "mysql")
    md = sa.MetaData()
    shifts = sa.Table(
        "shifts",
        md,
        sa.Column("site", sa.String(10), primary_key=True),
        sa.Column("starts", micro, primary_key=True),
        sa.Column("note", sa.String(20)),
    )
    staff = sa.Table(
        "shift_staff",
        md,
        sa.Column("site", sa.String(10), primary_key=True),
        sa.Column("starts", micro, primary_key=True),
        sa.Column("person", sa.String(10), primary_key=True),
        sa.ForeignKeyConstraint(["site", "starts"], ["shifts.site", "shifts.starts"]),
    )
    source.create(shifts, staff)
    kept, gone = dt.datetime(2026, 1, 1, 12, 0, 0, 123456), dt.datetime(2026, 1, 2, 8, 30)
    with source.engine().begin() as conn:
        conn.execute(
            shifts.insert(), [{"site": "A", "starts": t, "note": "n"} for t in (kept, gone)]
        )
        conn.execute(
            staff.insert(), [{"site": "A", "starts": t, "person": "p"} for t in (kept, gone)]
        )
    config = source.config()
    tidegate.init(config)
    api.entities_enable(config, ["SHIFTS"], ongoing=True)
    with source.engine().begin() as conn:
        conn.execute(shifts.update().where(shifts.c.starts == kept).values(note="changed"))
        conn.execute(staff.delete().where(staff.c.starts == gone))
        conn.execute(shifts.delete().where(shifts.c.starts == gone))
    [result] = api.export_ongoing(config, threads=1)
    folder = source.tmp_path / "exports" / "entities"
    lines = [
        json.loads(line)
        for f in result.files
        for line in gzip.decompress((folder / f.name).read_bytes()).decode().splitlines()
    ]
    by_deleted = {bool(record.get("DELETED")): record for record in lines}
    assert len(lines) == 2 and set(by_deleted) == {True, False}
    assert by_deleted[False]["DATA"]["shifts"][0]["note"] == "changed"
    assert by_deleted[False]["DATA"]["shift_staff"][0]["person"] == "p"
    assert by_deleted[True]["DATA"] == {"shifts": [], "shift_staff": []}
