"""What `[capture] keep` does to tidegate's tables in the source, and to its writers, on
PostgreSQL.

A writer process commits UPDATEs of random rows (``--per-statement`` rows each, every
statement its own transaction) until it has made ``--changes`` changes, while this process
runs a table export every ``--interval`` seconds. It does so twice, in rotating order:

* **without purge**: ``[capture] keep = "7d"``, so nothing is removed during the run (the
  way every tidegate before 0.2 ran);
* **with purge**: ``[capture] keep = --keep``, so each export removes what is older.

Reported for each: the writer's changes per second (the whole run, and its slowest second),
the most rows and bytes ``tidegate_change`` held after any export, and the bytes of all of
tidegate's tables at the end (``tidegate status``). With purge the changes kept stay below
the bound ``rate x (keep + interval + the longest export)``, which the report computes
from the measured rate and states beside the measured peak.

How it measures:

* a scratch database ``tidegate_bench_<random>`` is created next to the one in ``--url``
  and dropped at the end, also on error or Ctrl-C;
* ``bench_retention`` holds ``--rows`` rows, filled before capture is installed; each run
  installs capture afresh (``tidegate init``), takes the first export (the snapshot),
  then starts the writer;
* the writer uses psycopg 3 with a server-side prepared statement; its timing starts with
  its first statement and ends with its last.

Run it from the repository root:

    .venv/bin/python bench/retention.py
    .venv/bin/python bench/retention.py --changes 100000 --keep 3s
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from harness import progress, scratch_database, tidegate_commit

import tidegate
from tidegate import api
from tidegate.config import load_config

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLE = "bench_retention"


@dataclass
class Outcome:
    """One run: the writer's pace and what tidegate's tables held."""

    keep: str
    changes: int
    seconds: float
    changes_per_second: float
    slowest_second: float  # changes in the writer's slowest whole second
    exports: int
    longest_export_seconds: float
    peak_change_rows: int
    peak_change_bytes: int
    final_tidegate_bytes: int


def write(url: str, rows: int, changes: int, per_statement: int, ready: Any, report: Any) -> None:
    """The writer process: UPDATEs of random rows until `changes` changes are made; sends
    back its seconds and the changes made in each whole second."""
    rng = random.Random(1)
    per_second: dict[int, int] = {}
    with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
        ready.wait()
        started = time.perf_counter()
        made = 0
        while made < changes:
            ids = rng.sample(range(1, rows + 1), per_statement)
            conn.execute(f"UPDATE {TABLE} SET v = v + 1 WHERE id = ANY(%s)", [ids])
            made += per_statement
            second = int(time.perf_counter() - started)
            per_second[second] = per_second.get(second, 0) + per_statement
        report.send((time.perf_counter() - started, made, per_second))


def one_run(url: str, keep: str, args: argparse.Namespace, work: Path) -> Outcome:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, v integer NOT NULL)")
        conn.execute(f"INSERT INTO {TABLE} SELECT i, 0 FROM generate_series(1, %s) i", [args.rows])
    config = load_config(
        None,
        [
            f"source.url={url}",
            f"output.location={work / 'exports'}",
            f"capture.keep={keep}",
            "tables.max_span=1d",
        ],
        environ={},
    )
    tidegate.init(config)
    tidegate.export_tables(config)  # the snapshot
    ready = multiprocessing.Event()
    receive, send = multiprocessing.Pipe(duplex=False)
    writer = multiprocessing.Process(
        target=write, args=(url, args.rows, args.changes, args.per_statement, ready, send)
    )
    writer.start()
    ready.set()
    exports, longest, peak_rows, peak_bytes = 0, 0.0, 0, 0
    while True:
        done = not writer.is_alive()
        began = time.perf_counter()
        exports += len(tidegate.export_tables(config, until_caught_up=True))
        longest = max(longest, time.perf_counter() - began)
        rows, size = _change_table(url)
        peak_rows, peak_bytes = max(peak_rows, rows), max(peak_bytes, size)
        if done:
            break
        time.sleep(args.interval)
    writer.join()
    seconds, made, per_second = receive.recv()
    whole = [count for second, count in per_second.items() if second < int(seconds)]
    final = sum(size.bytes or 0 for size in api.footprint(config))
    api.uninstall(config)
    return Outcome(
        keep=keep,
        changes=made,
        seconds=seconds,
        changes_per_second=made / seconds,
        slowest_second=min(whole) if whole else made,
        exports=exports,
        longest_export_seconds=longest,
        peak_change_rows=peak_rows,
        peak_change_bytes=peak_bytes,
        final_tidegate_bytes=final,
    )


def _change_table(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), pg_total_relation_size('tidegate_change') FROM tidegate_change"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(duration[:-1]) * units[duration[-1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="admin URL of the PostgreSQL server")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--per-statement", type=int, default=20)
    parser.add_argument("--keep", default="5s", help="[capture] keep of the purging run")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between exports")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, list[Outcome]] = {"7d": [], args.keep: []}
    with scratch_database(args.url) as url, tempfile.TemporaryDirectory() as scratch:
        for number in range(args.rounds):
            order = list(results) if number % 2 == 0 else list(reversed(results))
            for keep in order:
                work = Path(tempfile.mkdtemp(dir=scratch))
                outcome = one_run(url, keep, args, work)
                results[keep].append(outcome)
                progress(
                    f"round {number + 1} keep={keep:<4} {outcome.changes_per_second:9,.0f} "
                    f"changes/s, peak tidegate_change {outcome.peak_change_rows:,} rows"
                )
    if args.json:
        print(json.dumps({k: [asdict(o) for o in v] for k, v in results.items()}, indent=2))
        return
    _report(results, args)


def _report(results: dict[str, list[Outcome]], args: argparse.Namespace) -> None:
    print(f"tidegate {tidegate_commit()}: {args.changes:,} changes, {args.rows:,} rows, ")
    print(f"{args.per_statement} rows per UPDATE, an export every {args.interval:g} s\n")
    print(
        "| keep | changes/s (median) | slowest second | exports | longest export |"
        " peak tidegate_change | tidegate tables at the end |"
    )
    print("|---|---|---|---|---|---|---|")
    for keep, outcomes in results.items():
        rate = statistics.median(o.changes_per_second for o in outcomes)
        last = outcomes[-1]
        print(
            f"| {keep} | {rate:,.0f} | {min(o.slowest_second for o in outcomes):,} |"
            f" {last.exports} | {max(o.longest_export_seconds for o in outcomes):.2f} s |"
            f" {max(o.peak_change_rows for o in outcomes):,} rows,"
            f" {max(o.peak_change_bytes for o in outcomes) / 2**20:.1f} MiB |"
            f" {last.final_tidegate_bytes / 2**20:.1f} MiB |"
        )
    purging = results[args.keep]
    rate = max(o.changes_per_second for o in purging)
    longest = max(o.longest_export_seconds for o in purging)
    bound = rate * (_seconds(args.keep) + args.interval + longest)
    peak = max(o.peak_change_rows for o in purging)
    kept = statistics.median(o.changes_per_second for o in purging)
    unpurged = statistics.median(o.changes_per_second for o in results["7d"])
    print(
        f"\nbound with keep={args.keep}: rate x (keep + interval + longest export) = "
        f"{bound:,.0f} rows; peak {peak:,} rows ({'within' if peak <= bound else 'OVER'});"
        f" writers with purge at {kept / unpurged:.2f}x of without"
    )


if __name__ == "__main__":
    sys.exit(main())
