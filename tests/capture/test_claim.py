"""Claims never skip a committed change and never return one twice.

Writers here are real connections with real transactions, some left open across claims,
some rolled back; claimers are real processes, some killed with SIGKILL mid-claim.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tidegate
from tests.conftest import Source
from tidegate import capture, control
from tidegate.api import open_source
from tidegate.model import Change

Key = tuple[object, ...]


def keyed_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
    )


def claim_all(source: Source) -> list[Change]:
    config = source.config()
    claim = tidegate.claim_changes(config)
    return [] if claim is None else list(tidegate.read_claim(config, claim.audit_key))


def test_change_of_open_transaction_is_claimed_by_the_next_claim(
    server_source: Source,
) -> None:
    table = keyed_table("item")
    server_source.create(table)
    tidegate.init(server_source.config())
    engine = server_source.engine()
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "v": 0}])
    writer = engine.connect()
    transaction = writer.begin()
    writer.execute(table.insert(), [{"id": 2, "v": 0}, {"id": 3, "v": 0}])
    writer.execute(table.update().where(table.c.id == 1).values(v=1))

    started = time.monotonic()
    first = claim_all(server_source)
    assert time.monotonic() - started < 5, "the claim waited for the open transaction"
    assert [(c.op, c.key) for c in first] == [("I", (1,))]
    assert claim_all(server_source) == []  # still open: nothing new, nothing skipped

    transaction.commit()
    writer.close()
    second = claim_all(server_source)
    assert [(c.op, c.key) for c in second] == [("I", (2,)), ("I", (3,)), ("U", (1,))]
    assert second[0].audit_key > first[0].audit_key
    assert claim_all(server_source) == []


def test_sqlite_claim_waits_for_an_open_writer_and_then_includes_it(
    sqlite_source: Source,
) -> None:
    # SQLite has one writer at a time: a claim, which writes, queues behind an open write
    # transaction instead of skipping it.
    table = keyed_table("item")
    sqlite_source.create(table)
    tidegate.init(sqlite_source.config())
    writer = sqlite_source.engine().connect()
    transaction = writer.begin()
    writer.execute(table.insert(), [{"id": 1, "v": 0}])
    result: list[list[Change]] = []
    claimer = threading.Thread(target=lambda: result.append(claim_all(sqlite_source)))
    claimer.start()
    claimer.join(1.0)
    assert claimer.is_alive(), "the claim did not wait for the open write transaction"
    writer.execute(table.insert(), [{"id": 2, "v": 0}])
    transaction.commit()
    writer.close()
    claimer.join(30)
    assert [(c.op, c.key) for c in result[0]] == [("I", (1,)), ("I", (2,))]


def test_an_empty_claim_uses_no_audit_key(source: Source) -> None:
    table = keyed_table("item")
    source.create(table)
    tidegate.init(source.config())
    assert tidegate.claim_changes(source.config()) is None
    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "v": 0}])
    claim = tidegate.claim_changes(source.config())
    assert claim is not None and claim.audit_key == 1 and claim.changes == 1


@dataclass
class WriterLog:
    """What one writer committed, in commit order: (op, key) per change."""

    committed: list[tuple[str, Key]] = field(default_factory=list)
    rolled_back: int = 0


def run_writer(
    engine: sa.Engine, table: sa.Table, worker: int, seed: int, stop_at: float, log: WriterLog
) -> None:
    """Random transactions of 1-6 changes on keys this writer owns; one in five rolls back;
    some sleep while open so that claims run across them."""
    rng = random.Random(seed)
    alive: set[int] = set()
    next_key = worker * 1_000_000
    while time.monotonic() < stop_at:
        tentative_alive = set(alive)
        changes: list[tuple[str, Key]] = []
        with engine.connect() as conn:
            transaction = conn.begin()
            for _ in range(rng.randint(1, 6)):
                choice = rng.random()
                if not tentative_alive or choice < 0.4:
                    next_key += 1
                    conn.execute(table.insert().values(id=next_key, v=0))
                    tentative_alive.add(next_key)
                    changes.append(("I", (next_key,)))
                elif choice < 0.7:
                    key = rng.choice(sorted(tentative_alive))
                    conn.execute(table.update().where(table.c.id == key).values(v=table.c.v + 1))
                    changes.append(("U", (key,)))
                elif choice < 0.85:
                    key = rng.choice(sorted(tentative_alive))
                    conn.execute(table.delete().where(table.c.id == key))
                    tentative_alive.discard(key)
                    changes.append(("D", (key,)))
                else:  # move a row to a new key: captured as delete + update
                    key = rng.choice(sorted(tentative_alive))
                    next_key += 1
                    conn.execute(table.update().where(table.c.id == key).values(id=next_key))
                    tentative_alive.discard(key)
                    tentative_alive.add(next_key)
                    changes += [("D", (key,)), ("U", (next_key,))]
                if rng.random() < 0.3:
                    time.sleep(rng.random() * 0.05)  # hold the transaction open
            if rng.random() < 0.2:
                transaction.rollback()
                log.rolled_back += 1
            else:
                transaction.commit()
                alive = tentative_alive
                log.committed.extend(changes)
        time.sleep(rng.random() * 0.01)  # think time, as applications have


def check_claims(claims: list[tuple[int, list[Change]]], logs: list[WriterLog]) -> None:
    """Union of claims == committed changes, none twice, keys increasing, order kept."""
    audit_keys = [audit_key for audit_key, _changes in claims]
    assert audit_keys == sorted(audit_keys) and len(set(audit_keys)) == len(audit_keys)
    claimed = [change for _key, changes in claims for change in changes]
    ids = [change.change_id for change in claimed]
    assert len(ids) == len(set(ids)), "a change was claimed twice"
    committed = [change for log in logs for change in log.committed]
    assert Counter((c.op, c.key) for c in claimed) == Counter(committed)
    # Per row, the claimed sequence of changes is the committed sequence.
    by_key: dict[Key, list[str]] = defaultdict(list)
    for change in sorted(claimed, key=lambda c: (c.audit_key, c.change_id)):
        by_key[change.key].append(change.op)
    expected: dict[Key, list[str]] = defaultdict(list)
    for log in logs:
        for op, key in log.committed:
            expected[key].append(op)
    assert by_key == expected


def concurrent_round(
    source: Source, table: sa.Table, seed: int, writers: int, seconds: float
) -> tuple[list[tuple[int, list[Change]]], list[WriterLog]]:
    db = open_source(source.config(f'tables.include=["{table.name}"]'))
    engine = source.engine(pool_size=writers + 2)
    logs = [WriterLog() for _ in range(writers)]
    stop_at = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=run_writer,
            args=(engine, table, worker + 1, seed * 100 + worker, stop_at, logs[worker]),
        )
        for worker in range(writers)
    ]
    for thread in threads:
        thread.start()
    claims: list[tuple[int, list[Change]]] = []

    def claim_once() -> None:
        claim = capture.claim(db)
        if claim is not None:
            claims.append((claim.audit_key, list(capture.read_claim(db, claim.audit_key))))

    while any(thread.is_alive() for thread in threads):
        claim_once()
        time.sleep(0.01)
    claim_once()
    return claims, logs


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10**6), writers=st.integers(2, 6))
def test_concurrent_writers_every_committed_change_claimed_exactly_once(
    server_source: Source, seed: int, writers: int
) -> None:
    table = keyed_table(f"t{seed}_{writers}")
    server_source.create(table)
    tidegate.init(server_source.config(f'tables.include=["{table.name}"]'))
    claims, logs = concurrent_round(server_source, table, seed, writers, seconds=2.0)
    assert sum(len(log.committed) for log in logs) > 20, "the writers did too little to prove"
    assert sum(log.rolled_back for log in logs) > 0
    assert len(claims) > 3, "too few claims ran beside the writers"
    check_claims(claims, logs)


def test_concurrent_writers_on_sqlite(sqlite_source: Source) -> None:
    table = keyed_table("item")
    sqlite_source.create(table)
    tidegate.init(sqlite_source.config())
    claims, logs = concurrent_round(sqlite_source, table, seed=7, writers=3, seconds=3.0)
    # SQLite runs one writer at a time, so claims queue behind the writers' transactions.
    assert len(claims) >= 2
    check_claims(claims, logs)


# A claimer process. With a regular expression as its second argument, it announces
# "PAUSED" and sleeps just before sending the first statement that matches it, so the test
# can kill it at that exact point inside the claim's transaction.
CLAIMER = textwrap.dedent("""
    import re, sys, time
    import sqlalchemy as sa
    import tidegate

    pause_before = re.compile(sys.argv[2]) if len(sys.argv) > 2 else None

    @sa.event.listens_for(sa.Engine, "before_cursor_execute")
    def pause(conn, cursor, statement, parameters, context, executemany):
        if pause_before and pause_before.search(" ".join(statement.lower().split())):
            print("PAUSED", flush=True)
            time.sleep(60)

    config = tidegate.load_config(sys.argv[1], [], environ={})
    tidegate.claim_changes(config)
""")

# Points inside the claim transaction: after copying into tidegate_change, after deleting
# from tidegate_pending, and just before the claim's tick row is written.
PAUSE_POINTS = [r"^delete", r"^insert into \S*tidegate_change", r"^insert into \S*tidegate_tick"]


def bulk_insert(source: Source, table: sa.Table, first: int, count: int) -> None:
    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": first + i, "v": 0} for i in range(count)])


@pytest.mark.slow
def test_claimer_killed_mid_claim_loses_nothing(source: Source) -> None:
    table = keyed_table("item")
    source.create(table)
    config = source.config()
    tidegate.init(config)
    config_path = source.tmp_path / "claimer.toml"
    config_path.write_text(f'[source]\nurl = "{source.url}"\nschema = "{source.schema}"\n')
    rng = random.Random(11)
    made = 0
    kills = 0
    kills_inside_claim = 0
    for round_number in range(8):
        bulk_insert(source, table, made + 1, 5_000)
        made += 5_000
        if round_number % 2 == 0:  # killed at a chosen point inside the transaction
            point = PAUSE_POINTS[(round_number // 2) % len(PAUSE_POINTS)]
            claimer = subprocess.Popen(
                [sys.executable, "-c", CLAIMER, str(config_path), point],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert claimer.stdout is not None
            assert claimer.stdout.readline().strip() == "PAUSED"
            kills_inside_claim += 1
        else:  # killed at a random moment, or let finish
            claimer = subprocess.Popen([sys.executable, "-c", CLAIMER, str(config_path)])
            time.sleep(rng.random() * 1.5)
        if claimer.poll() is None:
            os.kill(claimer.pid, signal.SIGKILL)
            kills += 1
        claimer.wait()
    assert kills >= 4, "too few claims were killed while running"
    final = tidegate.claim_changes(config)
    db = open_source(config)
    with db.engine.connect() as raw:
        conn = control.bind(db, raw)
        rows = conn.execute(sa.select(control.change.c.pk)).all()
        ticks = conn.execute(sa.select(control.tick).order_by(control.tick.c.audit_key)).all()
    db.engine.dispose()
    keys = [row.pk.replace(" ", "") for row in rows]
    assert len(keys) == made and len(set(keys)) == made
    assert set(keys) == {f"[{i}]" for i in range(1, made + 1)}
    assert sum(t.changes for t in ticks) == made
    assert final is None or final.audit_key == ticks[-1].audit_key
    assert tidegate.pending_changes(config) == {"item": 0}
    # Each killed claim's run is found and marked by the next one. (A process killed at a
    # random moment may die before it recorded its run at all.)
    statuses = Counter(run.status for run in tidegate.list_runs(config, job="claim"))
    assert kills_inside_claim <= statuses["abandoned"] <= kills
    assert statuses["running"] == 0
