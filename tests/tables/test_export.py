"""Table export on every source dialect, checked by an independent stdlib reader."""

from __future__ import annotations

import datetime as dt
import random
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tidegate
from tests.conftest import Source
from tests.tables.helpers import NASTY_TEXT, assert_rebuild_equals_source, sample_tables
from tests.tables.independent_reader import rebuild

UTC = dt.UTC


def parent_values(rng: random.Random, key: int) -> dict[str, Any]:
    return {
        "id": key,
        "label": rng.choice(NASTY_TEXT),
        "blob": rng.choice([None, b"", b"\x00\xff\x10", bytes(range(256))]),
        "big": rng.choice(
            [
                None,
                Decimal("123456789012345678901234567.0123456789"),
                Decimal("-0.0000000001"),
                Decimal(rng.randint(-(10**9), 10**9)),
            ]
        ),
        "ts": rng.choice([None, dt.datetime(2026, 1, 2, 3, 4, 5, rng.randint(0, 999_999))]),
        "tstz": rng.choice([None, dt.datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)]),
        "flag": rng.choice([None, True, False]),
        "ratio": rng.choice([None, 0.1, -1e-300, 1e20, 3.141592653589793, 2.0]),
        "day": rng.choice([None, dt.date(2024, 2, 29)]),
    }


def exports_of(source: Source) -> Path:
    return source.tmp_path / "exports"


def export(source: Source, **options: Any) -> list[tidegate.ExportResult]:
    return tidegate.export_tables(source.config(), **options)


def test_first_export_is_a_snapshot_then_changes_only(source: Source) -> None:
    parent, child = sample_tables()
    source.create(parent, child)
    rng = random.Random(1)
    with source.engine().begin() as conn:
        conn.execute(parent.insert(), [parent_values(rng, k) for k in range(1, 30)])
        conn.execute(child.insert(), [{"parent_id": 1, "code": "a,b", "qty": 1, "note": None}])
    tidegate.init(source.config())
    [first] = export(source)
    assert first.kind == "snapshot"
    assert {t.name: t.rows for t in first.tables} == {"parent": 29, "child line": 1}
    assert export(source) == []  # nothing pending: nothing written
    with source.engine().begin() as conn:
        conn.execute(parent.update().where(parent.c.id == 3).values(label="changed"))
        conn.execute(parent.delete().where(parent.c.id == 4))
    [second] = export(source)
    assert second.kind == "incremental"
    assert [(t.name, t.rows, t.deleted) for t in second.tables] == [("parent", 1, 1)]
    rebuilt = assert_rebuild_equals_source(source, exports_of(source), parent, child)
    assert rebuilt.kinds == ["snapshot", "incremental"]
    assert rebuilt.chain[1][0] == rebuilt.chain[0][1]


def test_nasty_values_round_trip(source: Source) -> None:
    parent, child = sample_tables()
    source.create(parent, child)
    tidegate.init(source.config())
    export(source)  # the (empty) snapshot
    rows = []
    for key, text in enumerate(NASTY_TEXT, start=1):
        values = parent_values(random.Random(key), key)
        values["label"] = text
        rows.append(values)
    with source.engine().begin() as conn:
        conn.execute(parent.insert(), rows)
        conn.execute(
            child.insert(),
            [
                {"parent_id": i, "code": code, "qty": i, "note": code}
                for i, code in enumerate(["a,b", 'q"q', "nl\nx", "ü", "trail  "], start=1)
            ],
        )
    export(source, until_caught_up=True)
    assert_rebuild_equals_source(source, exports_of(source), parent, child)
    folder = next(p for p in exports_of(source).iterdir() if p.name.startswith("export_"))
    check = subprocess.run(
        ["sha1sum", "-c", f"{folder.name}.zip.sha1"], cwd=folder, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


Op = tuple[str, int, int]


@st.composite
def operations(draw: st.DrawFn) -> list[Op]:
    kinds = st.sampled_from(["insert", "update", "delete", "move", "child", "export"])
    return draw(
        st.lists(
            st.tuples(kinds, st.integers(1, 12), st.integers(0, 10**6)), min_size=5, max_size=40
        )
    )


def apply_operation(
    source: Source, engine: sa.Engine, op: Op, parent: sa.Table, child: sa.Table
) -> None:
    kind, key, seed = op
    rng = random.Random(seed)
    if kind == "export":
        export(source)
        return
    with engine.begin() as conn:
        exists = conn.execute(sa.select(parent.c.id).where(parent.c.id == key)).first()
        if kind == "insert" and not exists:
            conn.execute(parent.insert(), [parent_values(rng, key)])
        elif kind == "update" and exists:
            values = parent_values(rng, key)
            del values["id"]
            conn.execute(parent.update().where(parent.c.id == key).values(values))
        elif kind == "delete" and exists:
            conn.execute(child.delete().where(child.c.parent_id == key))
            conn.execute(parent.delete().where(parent.c.id == key))
        elif kind == "move" and exists:
            target = key + 100 + rng.randint(0, 50)
            if not conn.execute(sa.select(parent.c.id).where(parent.c.id == target)).first():
                conn.execute(parent.update().where(parent.c.id == key).values(id=target))
        elif kind == "child":
            code = rng.choice(["a", "b,c", 'd"e'])
            existing = conn.execute(
                sa.select(child.c.qty).where(child.c.parent_id == key, child.c.code == code)
            ).first()
            if existing:
                conn.execute(
                    child.update()
                    .where(child.c.parent_id == key, child.c.code == code)
                    .values(qty=child.c.qty + 1)
                )
            else:
                conn.execute(
                    child.insert(),
                    [{"parent_id": key, "code": code, "qty": 1, "note": rng.choice(NASTY_TEXT)}],
                )


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations())
def test_random_changes_rebuild_equals_source(source: Source, ops: list[Op]) -> None:
    parent, child = sample_tables()
    engine = source.engine()
    _reset(source, engine, parent, child)
    for op in ops:
        apply_operation(source, engine, op, parent, child)
    export(source, until_caught_up=True)
    assert_rebuild_equals_source(source, exports_of(source), parent, child)


def _reset(source: Source, engine: sa.Engine, parent: sa.Table, child: sa.Table) -> None:
    """A fresh start for one hypothesis example: no tidegate, empty tables, no exports."""
    config = source.config()
    engine.connect().close()  # a SQLite source file must exist before tidegate opens it
    tidegate.uninstall(config)
    with engine.begin() as conn:
        child.drop(conn, checkfirst=True)
        parent.drop(conn, checkfirst=True)
        parent.create(conn)
        child.create(conn)
    shutil.rmtree(exports_of(source), ignore_errors=True)
    tidegate.init(config)


def test_open_transaction_across_an_export_is_exported_later(server_source: Source) -> None:
    # (On SQLite an export's claim waits for an open write transaction instead: see
    # tests/capture/test_claim.py.)
    source = server_source
    parent, child = sample_tables()
    source.create(parent, child)
    tidegate.init(source.config())
    export(source)
    engine = source.engine()
    rng = random.Random(5)
    with engine.begin() as conn:
        conn.execute(parent.insert(), [parent_values(rng, 1)])
    writer = engine.connect()
    transaction = writer.begin()
    writer.execute(parent.insert(), [parent_values(rng, 2)])
    writer.execute(parent.update().where(parent.c.id == 1).values(label="in txn"))
    [during] = export(source)  # sees only row 1's insert
    assert [(t.name, t.rows) for t in during.tables] == [("parent", 1)]
    transaction.commit()
    writer.close()
    [after] = export(source)
    assert [(t.name, t.rows) for t in after.tables] == [("parent", 2)]
    assert_rebuild_equals_source(source, exports_of(source), parent, child)


def test_max_span_splits_a_backlog_and_until_caught_up_drains_it(source: Source) -> None:
    events = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("happened_at", sa.DateTime),
    )
    source.create(events)
    config = source.config("tables.time_columns.events=happened_at", "tables.max_span=1d")
    tidegate.init(config)
    tidegate.export_tables(config)
    start = dt.datetime(2026, 3, 1)
    with source.engine().begin() as conn:
        conn.execute(
            events.insert(),
            [{"id": i, "happened_at": start + dt.timedelta(hours=6 * i)} for i in range(12)],
        )  # three days of data
    results = tidegate.export_tables(config, until_caught_up=True)
    assert len(results) == 3
    rebuilt = rebuild(exports_of(source))
    assert len(rebuilt.tables["events"]) == 12
    assert [r.rows for r in results] == [4, 4, 4]
    # Each folder starts at the oldest data time still pending, one day apart.
    starts = []
    for result in results:
        xml = (exports_of(source) / result.name / f"{result.name}.extracted.xml").read_text()
        seconds = int(re.search(r'min-data-ts="(\d+)"', xml).group(1))  # type: ignore[union-attr]
        starts.append(dt.datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None))
    assert starts == [start, start + dt.timedelta(days=1), start + dt.timedelta(days=2)]


def test_naive_time_columns_are_read_in_the_source_time_zone(server_source: Source) -> None:
    events = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("happened_at", sa.DateTime),
    )
    server_source.create(events)
    config = server_source.config(
        "tables.time_columns.events=happened_at", "source.timezone=Europe/Berlin"
    )
    try:
        tidegate.init(config)
    except tidegate.CaptureError as refused:  # MariaDB without its time zone tables
        assert "time zone tables" in refused.hint
        return
    with server_source.engine().begin() as conn:
        conn.execute(events.insert(), [{"id": 1, "happened_at": dt.datetime(2026, 7, 1, 12)}])
    claim = tidegate.claim_changes(config)
    assert claim is not None
    [change] = tidegate.read_claim(config, claim.audit_key)
    assert change.data_at == dt.datetime(2026, 7, 1, 10, tzinfo=UTC)  # CEST is UTC+2


def test_restart_options_keep_the_chain(sqlite_source: Source) -> None:
    parent, child = sample_tables()
    sqlite_source.create(parent, child)
    config = sqlite_source.config()
    tidegate.init(config)
    rng = random.Random(9)
    with sqlite_source.engine().begin() as conn:
        conn.execute(parent.insert(), [parent_values(rng, k) for k in range(1, 6)])
    tidegate.export_tables(config)
    [restart] = tidegate.export_tables(config, restart_from_beginning=True)
    assert (restart.kind, restart.restart) == ("snapshot", "beginning")
    with sqlite_source.engine().begin() as conn:
        conn.execute(parent.update().where(parent.c.id == 2).values(label="x"))
    tidegate.export_tables(config)
    [again] = tidegate.export_tables(
        config, reexport_since=dt.datetime.now(UTC) - dt.timedelta(hours=1)
    )
    assert again.restart == "reexport"
    assert [t.rows for t in again.tables] == [5]  # all five rows changed within the hour
    with pytest.raises(tidegate.ConfigError):
        tidegate.export_tables(
            config, restart_from_beginning=True, reexport_since=dt.datetime.now(UTC)
        )
    rebuilt = assert_rebuild_equals_source(sqlite_source, exports_of(sqlite_source), parent)
    assert rebuilt.kinds == ["snapshot", "snapshot", "incremental", "incremental"]


def test_a_reexport_before_any_export_is_the_streams_snapshot(sqlite_source: Source) -> None:
    """With nothing exported yet, `--reexport-since` writes the first export, a snapshot
    (it was once an incremental export that no target could start from)."""
    parent, child = sample_tables()
    sqlite_source.create(parent, child)
    config = sqlite_source.config()
    tidegate.init(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(parent.insert(), [parent_values(random.Random(3), k) for k in (1, 2)])
    [first] = tidegate.export_tables(config, reexport_since=dt.datetime.now(UTC))
    assert first.kind == "snapshot"
    assert sorted((t.name, t.rows, t.whole) for t in first.tables) == [
        ("child line", 0, True),
        ("parent", 2, True),
    ]
    rebuilt = assert_rebuild_equals_source(sqlite_source, exports_of(sqlite_source), parent)
    assert rebuilt.kinds == ["snapshot"]


def test_memory_location(sqlite_source: Source) -> None:
    import fsspec

    parent, _child = sample_tables()
    sqlite_source.create(parent)
    config = sqlite_source.config("output.location=memory://tidegate-test/exports")
    tidegate.init(config)
    [result] = tidegate.export_tables(config)
    fs = fsspec.filesystem("memory")
    files = sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"/tidegate-test/exports/{result.name}"))
    assert files == sorted(
        [f"{result.name}.zip", f"{result.name}.zip.sha1", f"{result.name}.extracted.xml"]
    )
    fs.rm("/tidegate-test", recursive=True)


def test_unencodable_value_stops_the_run_naming_table_column_and_key(
    sqlite_source: Source,
) -> None:
    parent, _child = sample_tables()
    sqlite_source.create(parent)
    with sqlite_source.engine().begin() as conn:
        conn.execute(parent.insert(), [{"id": 7, "label": "日本"}])
    config = sqlite_source.config("output.encoding=latin-1")
    tidegate.init(config)
    with pytest.raises(tidegate.TidegateError) as refused:
        tidegate.export_tables(config)
    assert str(refused.value).startswith(
        "table 'parent', column 'label', key {'id': '7'}: the value cannot be written"
    )
    published = [p for p in exports_of(sqlite_source).iterdir() if p.name.startswith("export_")]
    assert published == []


@pytest.mark.parametrize("location", ["local", "memory"])
def test_a_failed_publish_is_redone_under_the_same_name(
    sqlite_source: Source, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec

    from tidegate.formats import manifest as manifest_format

    parent, _child = sample_tables()
    sqlite_source.create(parent)
    url = (
        str(exports_of(sqlite_source))
        if location == "local"
        else f"memory://redo-{sqlite_source.tmp_path.name}"
    )
    config = sqlite_source.config(f"output.location={url}")
    tidegate.init(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(parent.insert(), [parent_values(random.Random(3), 1)])

    def fail(_manifest: object) -> bytes:
        raise OSError(28, "No space left on device")

    # The manifest is the last file written: failing there leaves a zip without it.
    monkeypatch.setattr(manifest_format, "render", fail)
    with pytest.raises(tidegate.TidegateError, match="No space left on device"):
        tidegate.export_tables(config)
    monkeypatch.undo()

    fs, root = fsspec.core.url_to_fs(url)
    visible = [p for p in fs.ls(root, detail=False) if "export_" in p]
    if location == "local":
        assert visible == []  # still in staging: a reader sees nothing
    [redone] = tidegate.export_tables(config)
    assert redone.redone
    folders = [p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False) if "export_" in p]
    assert folders == [redone.name]
    assert fs.exists(f"{root}/{redone.name}/{redone.name}.extracted.xml")
    if location == "memory":
        fs.rm(root, recursive=True)
    else:
        assert_rebuild_equals_source(sqlite_source, exports_of(sqlite_source), parent)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_export_without_client_programs_reads_in_process(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dialect: str,
) -> None:
    from tests.conftest import _make_source

    monkeypatch.setenv("TIDEGATE_NO_CLIENTS", "1")
    source = next(_make_source(request, dialect, tmp_path))
    parent, child = sample_tables()
    source.create(parent, child)
    tidegate.init(source.config())
    rng = random.Random(17)
    with source.engine().begin() as conn:
        conn.execute(parent.insert(), [parent_values(rng, k) for k in range(1, 40)])
    [first] = export(source)
    assert first.tables[1].rows == 39
    assert_rebuild_equals_source(source, exports_of(source), parent, child)
    source.dispose()


def test_a_restart_asked_after_a_failed_run_is_done_after_the_redo(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--restart-from-beginning` when a dead run left an export planned: that export is
    redone first (the chain needs it), then the restart runs; it was once dropped."""
    from tidegate.formats import manifest as manifest_format

    parent, _child = sample_tables()
    sqlite_source.create(parent)
    config = sqlite_source.config()
    tidegate.init(config)
    tidegate.export_tables(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(parent.insert(), [parent_values(random.Random(3), 1)])

    def fail(_manifest: object) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manifest_format, "render", fail)
    with pytest.raises(tidegate.TidegateError):
        tidegate.export_tables(config)
    monkeypatch.undo()
    redone, restarted = tidegate.export_tables(config, restart_from_beginning=True)
    assert redone.redone and redone.restart is None
    assert restarted.restart == "beginning" and restarted.kind == "snapshot"
