"""Concurrency soak on PostgreSQL: 8 writer processes at full speed while `tidegate serve`
exports tables and entities every second and loads every three seconds.

Writers commit, roll back, and hold transactions open across exports. When they stop, the
service is given time to catch up, then one last export and load run; the target must
equal the source table by table, `verify` must find nothing, no table-export CSV may list a
key twice, and no entity run may carry an entity twice. The test reports the writes per
second held and the lag reached (the service's own `/api/chain`).

CI runs it for ``SOAK_SECONDS`` (15 s of writing); ``pytest --long [--long-minutes N]``
for N minutes (default 10).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import multiprocessing
import os
import random
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import Source, _pg_source
from tests.load.conftest import make_target
from tests.load.helpers import assert_target_equals_source
from tests.web.conftest import start_service, stop_service
from tests.web.test_metrics import scrape
from tidegate import api
from tidegate.config import load_config

WRITERS = 8
SOAK_SECONDS = 15
ARTIFACTS = Path(
    os.environ.get("TIDEGATE_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")
)

pytestmark = pytest.mark.slow


def tables() -> list[sa.Table]:
    metadata = sa.MetaData()
    return [
        sa.Table(
            "account",
            metadata,
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("owner", sa.Text, nullable=False),
            sa.Column("balance", sa.Numeric(14, 2)),
        ),
        sa.Table(
            "account_line",
            metadata,
            sa.Column(
                "account_id",
                sa.BigInteger,
                sa.ForeignKey("account.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("amount", sa.Numeric(14, 2)),
        ),
        sa.Table(
            "audit_note",  # a table of no entity: table export only
            metadata,
            sa.Column("note_id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("text", sa.Text),
        ),
    ]


def write_until(url: str, schema: str, writer: int, seconds: float, results: Any) -> None:
    """One writer process: random transactions on its own key range at full speed; about
    one in twenty rolls back and one in twenty stays open for up to a second."""
    import psycopg

    rng = random.Random(writer)
    base = writer * 10_000_000
    accounts: list[int] = []
    next_id = base
    committed = rolled_back = 0
    began = time.monotonic()
    deadline = began + seconds
    url = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, options=f"-csearch_path={schema}") as conn:
        while time.monotonic() < deadline:
            with conn.cursor() as cur:
                created: list[int] = []
                removed: list[int] = []
                for _ in range(rng.randint(1, 4)):
                    roll = rng.random()
                    if roll < 0.35 or not accounts:
                        next_id += 1
                        cur.execute(
                            "INSERT INTO account VALUES (%s, %s, %s)",
                            (next_id, f'owner {next_id}, "q"', rng.randint(0, 10**6) / 100),
                        )
                        for line in range(rng.randint(0, 3)):
                            cur.execute(
                                "INSERT INTO account_line VALUES (%s, %s, %s)",
                                (next_id, line, rng.randint(-999, 999) / 100),
                            )
                        created.append(next_id)
                    elif roll < 0.65:
                        cur.execute(
                            "UPDATE account SET balance = balance + 1 WHERE id = %s",
                            (rng.choice(accounts),),
                        )
                    elif roll < 0.80:
                        cur.execute(
                            "UPDATE account_line SET amount = amount - 1 WHERE account_id = %s",
                            (rng.choice(accounts),),
                        )
                    elif roll < 0.90:
                        victim = rng.choice(accounts)
                        cur.execute("DELETE FROM account WHERE id = %s", (victim,))
                        removed.append(victim)
                    else:
                        cur.execute(
                            "INSERT INTO audit_note VALUES (%s, %s) ON CONFLICT (note_id) "
                            "DO UPDATE SET text = EXCLUDED.text",
                            (base + rng.randint(0, 500), f"note {rng.random()}"),
                        )
                if rng.random() < 0.05:
                    time.sleep(rng.uniform(0.2, 1.0))  # open across an export
                if rng.random() < 0.05:
                    conn.rollback()
                    rolled_back += 1
                    continue
                conn.commit()
                committed += 1
                accounts.extend(created)
                for victim in removed:
                    if victim in accounts:
                        accounts.remove(victim)
    results.put((time.monotonic() - began, committed, rolled_back))


def test_writers_at_full_speed_while_the_service_exports_and_loads(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: str
) -> None:
    long = request.config.getoption("--long", False)
    seconds = 60 * request.config.getoption("--long-minutes", 10) if long else SOAK_SECONDS
    source = _pg_source(tmp_path, pg_database)
    source.create(*tables())
    target = make_target(request, "postgresql", tmp_path)
    config_path = tmp_path / "soak.toml"
    config_path.write_text(
        f'[source]\nurl = "{source.url}"\nschema = "{source.schema}"\n'
        f'[output]\nlocation = "{tmp_path / "exports"}"\n'
        f'[target]\nurl = "{target.url}"\n'
        '[schedule]\ntables = "1s"\nongoing = "1s"\nload = "3s"\n'
    )
    config = load_config(config_path, environ={})
    api.init(config)
    api.entities_enable(config, [], all_eligible=True, ongoing=True)

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    writers = [
        context.Process(target=write_until, args=(source.url, source.schema, n, seconds, results))
        for n in range(1, WRITERS + 1)
    ]
    service = start_service(config_path)
    lags: list[float] = []
    end_to_end: list[float] = []  # scraped from /metrics while the writers write
    try:
        for process in writers:
            process.start()
        with service.client() as client:
            headers = {"X-Tidegate-Request": "1"}
            assert client.post("/api/jobs/initial/start", headers=headers).status_code == 202
            while any(process.is_alive() for process in writers):
                lags.append(client.get("/api/chain").json()["lag_seconds"])
                if len(lags) % 4 == 0:
                    end_to_end.append(scrape(client)[("tidegate_end_to_end_lag_seconds", ())])
                time.sleep(0.5)
            counts = [results.get(timeout=30) for _ in writers]
            caught_up = _catch_up(client)
            settled = scrape(client)
            jobs = client.get("/api/jobs").json()["jobs"]
            applied_by_service = client.get("/api/position").json()["applied"]
    finally:
        for process in writers:
            process.join(timeout=30)
        assert stop_service(service), "serve did not stop on SIGTERM"

    # The last changes, exported and loaded by the CLI's library calls.
    api.export_tables(config, until_caught_up=True)
    api.export_ongoing(config)
    api.load(config)

    assert_target_equals_source(source, target, "account", "account_line", "audit_note")
    _, problems = api.verify(config)
    assert [p for p in problems if p.serious] == []
    folders, records = _no_duplicates(tmp_path / "exports")
    history = api.list_runs(config, limit=100_000)
    failed = [(r.job, r.run_number, r.error) for r in history if r.status == "failed"]
    assert failed == [], failed
    assert {j["job"]: j["error"] for j in jobs if j["state"] == "failed"} == {}
    # /metrics followed it: the target behind the source while the writers wrote, not
    # behind at all once the service caught up.
    assert max(end_to_end) > 0, end_to_end
    assert settled[("tidegate_end_to_end_lag_seconds", ())] == 0
    assert settled[("tidegate_exports_not_loaded", ())] == 0
    assert settled[("tidegate_export_lag_seconds", ())] == 0

    commits = sum(c for _s, c, _r in counts)
    written = sum(s for s, _c, _r in counts) / len(counts)  # each writer's own time
    summary = (
        f"soak: {WRITERS} writers, {written:.0f} s: {commits} transactions committed "
        f"({commits / written:.0f}/s), {sum(r for _s, _c, r in counts)} rolled back; "
        f"lag max {max(lags):.1f} s, median {sorted(lags)[len(lags) // 2]:.1f} s; end-to-end "
        f"lag (/metrics) max {max(end_to_end):.1f} s; caught up "
        f"{caught_up:.1f} s after the writers stopped; {folders} table-export folders, "
        f"{records} entity records; runs: {dict(Counter(r.job for r in history))}, "
        f"{applied_by_service} exports applied by the service's loads; "
        f"target equals source: {_rows(source)} rows compared"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "soak.txt").write_text(summary + "\n")
    print(summary)
    source.dispose()
    target.dispose()


def _catch_up(client: Any, seconds: float = 120) -> float:
    """Seconds until the service has exported and loaded everything (no pending change,
    no queued entity, nothing left to load)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        view = client.get("/api/overview").json()
        position = view["load"]
        if (
            view["chain"]["pending_changes"] == 0
            and all(e["queue_depth"] == 0 for e in view["entities"])
            and not position["pending_table_exports"]
            and not position["pending_entity_runs"]
        ):
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"the service did not catch up within {seconds} s")


def _no_duplicates(exports: Path) -> tuple[int, int]:
    """No key twice in any table-export CSV, no entity twice in any entity run (read with
    the standard library only); the folder and record counts."""
    folders = sorted(exports.glob("export_*"))
    for folder in folders:
        with zipfile.ZipFile(folder / f"{folder.name}.zip") as archive:
            for member in archive.namelist():
                if not member.endswith(".csv"):
                    continue
                reader = csv.reader(io.TextIOWrapper(archive.open(member), encoding="utf-8"))
                header = next(reader)
                width = 2 if header[:2] == ["account_id", "line_no"] else 1
                keys = Counter(tuple(row[:width]) for row in reader)
                twice = [key for key, n in keys.items() if n > 1]
                assert not twice, f"{folder.name}/{member}: keys twice: {twice[:5]}"
    records = 0
    for manifest_path in (exports / "entities").glob("*.manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        seen: Counter[tuple[str, str]] = Counter()
        for entry in manifest["files"]:
            data = gzip.decompress((exports / "entities" / entry["name"]).read_bytes())
            for line in data.decode().splitlines():
                record = json.loads(line)
                seen[(record["OBJ"], record["PK1"])] += 1
        records += sum(seen.values())
        twice = [key for key, n in seen.items() if n > 1]
        assert not twice, f"{manifest_path.name}: entities twice: {twice[:5]}"
    return len(folders), records


def _rows(source: Source) -> int:
    with source.engine().connect() as conn:
        return sum(
            conn.execute(
                sa.select(sa.func.count()).select_from(sa.table(name, schema=source.schema))
            ).scalar()
            or 0
            for name in ("account", "account_line", "audit_note")
        )
