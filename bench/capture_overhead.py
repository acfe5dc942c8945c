"""What tidegate's change capture costs the source's writers, on PostgreSQL.

Measures single-row UPDATE and single-row INSERT throughput, each statement its own
autocommitted transaction (the way an OLTP application writes), without and with
tidegate's capture trigger, on the same table in the same run. With capture on, every row
change also appends one row to ``tidegate_pending`` inside the writer's transaction, so the
cost shows as fewer writes per second.

How it measures:

* a scratch database ``tidegate_bench_<random>`` is created next to the one in ``--url``
  and dropped at the end, also on error or Ctrl-C;
* ``bench_capture`` is filled with ``--rows`` rows by generate_series, before any capture;
* one untimed warm-up pass of both workloads brings table, indexes and caches to a steady
  state;
* each round measures without capture (tidegate uninstalled), then runs ``tidegate.init``
  and measures with capture. After each measurement with capture the pending changes are
  claimed (and their count checked against the writes made); after the round tidegate is
  uninstalled. Claiming, uninstalling, deleting inserted rows, VACUUM and CHECKPOINT are
  never timed;
* writers use plain psycopg 3 with server-side prepared statements; ``--clients`` > 1 runs
  that many writer processes, started together.

Reported: per workload the median ops/s over the rounds without and with capture, and the
median of the per-round ratios with/without, against the goal that writers keep at least
60% of their throughput with capture on.

Run it from the repository root (it needs a role that may create databases and run
CHECKPOINT):

    .venv/bin/python bench/capture_overhead.py
    .venv/bin/python bench/capture_overhead.py --seconds 2 --rounds 1 --rows 10000
    .venv/bin/python bench/capture_overhead.py --clients 4 --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from harness import scratch_database

import tidegate

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLE = "bench_capture"
WORKLOADS = ("update", "insert")
GOAL = 0.60  # writers keep at least 60% of their throughput with capture on
WARMUP_OPS = 200  # untimed statements per writer before the clock starts
WARMUP_SECONDS = 5.0  # longest untimed warm-up pass per workload before round 1
START_TIMEOUT = 120.0  # seconds writer processes may take to connect and warm up

CREATE_TABLE = f"""
CREATE TABLE {TABLE} (
    id bigint PRIMARY KEY,
    customer text,
    amount numeric(12,2),
    status text,
    updated_at timestamptz
)"""
FILL_TABLE = f"""
INSERT INTO {TABLE} (id, customer, amount, status, updated_at)
SELECT g, 'customer-' || (g %% 5000), (g %% 100000) / 100.0, 'open',
       now() - g * interval '1 second'
FROM generate_series(1, %s::bigint) AS g"""
UPDATE_ROW = f"UPDATE {TABLE} SET amount = amount + 1, updated_at = now() WHERE id = %s"
INSERT_ROW = (
    f"INSERT INTO {TABLE} (id, customer, amount, status, updated_at) "
    "VALUES (%s, %s, 12.34, 'new', now())"
)


@dataclass(frozen=True)
class Sample:
    """One writer's measurement."""

    timed_ops: int  # statements committed while the clock ran
    seconds: float  # how long the clock ran
    writes: int  # all statements committed, warm-up included


@dataclass(frozen=True)
class Measurement:
    """All writers' measurement of one workload in one mode."""

    ops_per_s: float
    writes: int


# --- the writers ----------------------------------------------------------------------------


def statement_maker(
    cur: psycopg.Cursor[Any], workload: str, rows: int, client: int, clients: int
) -> Callable[[], None]:
    """One autocommitted statement of the workload per call, prepared on the server.

    UPDATE picks a random prefilled row (the same sequence with and without capture);
    INSERT takes fresh ids above the prefilled ones, interleaved between the writers.
    """
    if workload == "update":
        pick = random.Random(client).randint

        def update() -> None:
            cur.execute(UPDATE_ROW, (pick(1, rows),), prepare=True)

        return update

    ids = itertools.count(rows + 1 + client, clients)
    customer = f"bench-client-{client}"

    def insert() -> None:
        cur.execute(INSERT_ROW, (next(ids), customer), prepare=True)

    return insert


def write_for(
    url: str,
    workload: str,
    rows: int,
    seconds: float,
    client: int = 0,
    clients: int = 1,
    barrier: Any = None,
) -> Sample:
    """One writer: warm up, wait for the others, then write as fast as it can for `seconds`."""
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        statement = statement_maker(cur, workload, rows, client, clients)
        for _ in range(WARMUP_OPS):
            statement()
        if barrier is not None:
            barrier.wait(timeout=START_TIMEOUT)
        ops = 0
        start = now = time.perf_counter()
        deadline = start + seconds
        while now < deadline:
            statement()
            ops += 1
            now = time.perf_counter()
        return Sample(ops, now - start, ops + WARMUP_OPS)


def _writer_process(args: tuple[Any, ...], barrier: Any, results: Any) -> None:
    """Entry point of a writer process: its Sample, or the text of its error, to `results`."""
    try:
        results.put(write_for(*args, barrier=barrier))
    except BaseException as error:  # incl. Ctrl-C: the parent must hear back either way
        barrier.abort()
        results.put(f"writer {args[4]}: {type(error).__name__}: {error}")


def run_writers(url: str, workload: str, rows: int, seconds: float, clients: int) -> Measurement:
    """Run `clients` writers at once; one writes in this process, more in their own."""
    if clients == 1:
        samples = [write_for(url, workload, rows, seconds)]
    else:
        samples = _run_processes(url, workload, rows, seconds, clients)
    return Measurement(
        ops_per_s=sum(s.timed_ops / s.seconds for s in samples),
        writes=sum(s.writes for s in samples),
    )


def _run_processes(
    url: str, workload: str, rows: int, seconds: float, clients: int
) -> list[Sample]:
    # spawn, not fork: a forked child must not share this process's open connections.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(clients)
    results = context.Queue()
    processes = [
        context.Process(
            target=_writer_process,
            args=((url, workload, rows, seconds, client, clients), barrier, results),
        )
        for client in range(clients)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=START_TIMEOUT + seconds + 60) for _ in processes]
    except BaseException:  # incl. Ctrl-C and SIGTERM: stop the writers now
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
    errors = [outcome for outcome in outcomes if isinstance(outcome, str)]
    if errors:
        raise RuntimeError("; ".join(errors))
    return outcomes


# --- the scratch database -------------------------------------------------------------------


def capture_config(url: str) -> tidegate.Config:
    """A tidegate configuration capturing only the benchmark table, ignoring any local file."""
    with tempfile.TemporaryDirectory() as directory:
        empty = Path(directory, "tidegate.toml")
        empty.write_text("")
        return tidegate.load_config(
            empty,
            [f"source.url={url}", "source.schema=public", f'tables.include=["{TABLE}"]'],
            environ={},
        )


def create_table(conn: psycopg.Connection[Any], rows: int) -> None:
    conn.execute(CREATE_TABLE)
    conn.execute(FILL_TABLE, (rows,))


def settle(conn: psycopg.Connection[Any], rows: int, *, remove_inserted: bool) -> None:
    """Same starting point for every measurement: no dead rows, fresh statistics, and a
    checkpoint just done (so that full-page writes weigh alike on every measurement)."""
    if remove_inserted:
        conn.execute(f"DELETE FROM {TABLE} WHERE id > %s", (rows,))
    conn.execute("VACUUM (ANALYZE)")
    conn.execute("CHECKPOINT")


def machine_facts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    def show(setting: str) -> str:
        row = conn.execute(f"SHOW {setting}").fetchone()
        return str(row[0]) if row else "?"

    return {
        "postgresql": show("server_version"),
        "synchronous_commit": show("synchronous_commit"),
        "fsync": show("fsync"),
        "cpu_count": os.cpu_count(),
    }


# --- the rounds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    """What every measurement needs."""

    url: str  # the scratch database
    conn: psycopg.Connection[Any]  # for set-up, outside the timed loops
    config: tidegate.Config
    rows: int
    clients: int


def measure_mode(bench: Bench, seconds: float, *, capture: bool, label: str) -> dict[str, float]:
    """Measure every workload in one mode; with capture, claim and check after each."""
    ops: dict[str, float] = {}
    for workload in WORKLOADS:
        settle(bench.conn, bench.rows, remove_inserted=not capture)
        result = run_writers(bench.url, workload, bench.rows, seconds, bench.clients)
        ops[workload] = result.ops_per_s
        mode = "with" if capture else "without"
        progress(f"{label:<9} {mode:<7} capture  {workload:<6} {result.ops_per_s:9.1f} ops/s")
        if capture:
            claim = tidegate.claim_changes(bench.config)
            claimed = claim.changes if claim else 0
            if claimed != result.writes:
                raise RuntimeError(f"capture saw {claimed} changes for {result.writes} {workload}s")
    return ops


def run_rounds(bench: Bench, seconds: float, rounds: int) -> list[dict[str, dict[str, float]]]:
    """Warm up once, then each round: without capture, init, with capture, uninstall."""
    measure_mode(bench, min(seconds, WARMUP_SECONDS), capture=False, label="warm-up")
    results = []
    for number in range(1, rounds + 1):
        label = f"round {number}"
        without = measure_mode(bench, seconds, capture=False, label=label)
        settle(bench.conn, bench.rows, remove_inserted=True)
        tidegate.init(bench.config)
        with_capture = measure_mode(bench, seconds, capture=True, label=label)
        tidegate.uninstall(bench.config)
        results.append({"without": without, "with": with_capture})
    return results


def summarize(rounds: list[dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """Per workload: median ops/s without and with, median of per-round ratios."""
    results = []
    for workload in WORKLOADS:
        pairs = [(r["without"][workload], r["with"][workload]) for r in rounds]
        ratio = statistics.median(with_ / without for without, with_ in pairs)
        results.append(
            {
                "workload": workload,
                "ops_per_s_without": statistics.median(p[0] for p in pairs),
                "ops_per_s_with": statistics.median(p[1] for p in pairs),
                "ratio": ratio,
                "meets_goal": ratio >= GOAL,
                "rounds": [{"without": p[0], "with": p[1], "ratio": p[1] / p[0]} for p in pairs],
            }
        )
    return results


# --- output ---------------------------------------------------------------------------------


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def print_table(args: argparse.Namespace, facts: dict[str, Any], results: list[Any]) -> None:
    print(
        f"capture overhead: {args.rows} rows, {args.rounds} round(s) x {args.seconds:g} s, "
        f"{args.clients} client(s)"
    )
    print(
        f"{'workload':<9} {'ops/s without':>14} {'ops/s with':>11} {'ratio':>6}  goal >= {GOAL:.2f}"
    )
    for r in results:
        verdict = "met" if r["meets_goal"] else "NOT met"
        print(
            f"{r['workload']:<9} {r['ops_per_s_without']:>14.1f} {r['ops_per_s_with']:>11.1f} "
            f"{r['ratio']:>6.2f}  {verdict}"
        )
    print("ops/s: median over rounds; ratio: median of the per-round ratios with/without")
    print(
        f"PostgreSQL {facts['postgresql']}, synchronous_commit={facts['synchronous_commit']}, "
        f"fsync={facts['fsync']}, {facts['cpu_count']} CPUs"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Writer throughput on PostgreSQL without and with tidegate capture."
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="admin URL (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=100_000, help="table size (default: 100000)")
    parser.add_argument(
        "--seconds", type=float, default=10, help="seconds per measurement (default: 10)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: 3)")
    parser.add_argument(
        "--clients", type=int, default=1, help="concurrent writer processes (default: 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    for name in ("rows", "seconds", "rounds", "clients"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Let `kill` drop the scratch database too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with scratch_database(args.url) as url, psycopg.connect(url, autocommit=True) as conn:
        facts = machine_facts(conn)
        create_table(conn, args.rows)
        bench = Bench(url, conn, capture_config(url), args.rows, args.clients)
        results = summarize(run_rounds(bench, args.seconds, args.rounds))
    if args.json:
        settings = {k: getattr(args, k) for k in ("rows", "seconds", "rounds", "clients")}
        report = {"settings": settings, "machine": facts, "goal": GOAL, "results": results}
        print(json.dumps(report, indent=2))
    else:
        print_table(args, facts, results)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; scratch database dropped", file=sys.stderr)
        sys.exit(130)
