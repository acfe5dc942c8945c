"""The first table export (a full snapshot) beside a raw dump + compress of the same rows.

Measures `tidegate export tables` run as its own process on a freshly initialised source,
on SQLite and on PostgreSQL, against the raw baselines of the measured anchors
(BENCHMARKS.md) on the same rows in the same run:

* SQLite: ``sqlite3 -csv -header source.db "SELECT * FROM <table>" > <table>.csv``, then
  ``zip -1`` of that file, for ``parent`` and ``child``; the four commands' wall times
  summed (BENCHMARKS.md's ``a_total``);
* PostgreSQL: ``psql -c "COPY (SELECT * FROM <table>) TO STDOUT CSV HEADER" | gzip -1 >
  <table>.csv.gz`` for both tables, wall times summed (BENCHMARKS.md's ``pg_a_copy_gzip1``).

Every measured command is a subprocess run under GNU ``/usr/bin/time -v`` (or, without it,
a small Python wrapper reading ``RUSAGE_CHILDREN``), which gives its peak RSS; wall time is
taken around it. rows/s counts parent + child rows. The tidegate wall time includes Python
start-up, reflection, the claim and publishing: everything the command does.

The data: ``parent`` (id, customer, email, amount numeric(12,2), ratio double/REAL, status,
created_at timestamp, note with commas, quotes, newlines, NULLs and non-ASCII) and ``child``
((parent_id, line_no) primary key, qty, sku), the same logical rows in both databases,
generated in SQL. Each size in ``--scales`` (plus ``--rows``) gets its own source; the
throughput goals are judged at ``--rows``, the memory goals at every size.

Each round runs ``tidegate uninstall --yes`` (removing the previous round's capture, if any)
and ``tidegate init`` with a fresh config and an empty output directory, untimed; only
``tidegate export tables`` is timed. The baseline and tidegate take turns going first.
The PostgreSQL data lives in a scratch database ``tidegate_bench_<random>`` dropped at the
end, also on error, Ctrl-C or SIGTERM; temporary directories are removed.

Run it from the repository root (needs the ``sqlite3``, ``zip``, ``psql`` and ``gzip``
commands, and a PostgreSQL role that may create databases):

    .venv/bin/python bench/table_export.py
    .venv/bin/python bench/table_export.py --rows 100000 --scales 20000 --only sqlite
    .venv/bin/python bench/table_export.py --rounds 3 --json
    .venv/bin/python bench/table_export.py --without-clients   # as after a bare pip install

``--without-clients`` runs tidegate with a ``PATH`` that holds neither ``psql`` nor
``sqlite3``, as on a machine where only ``pip install`` was run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from harness import (
    Sample,
    measure,
    progress,
    run_rounds,
    scratch_database,
    tidegate_commit,
    verdict,
)
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASES = ("sqlite", "postgresql")
GOALS = {"sqlite": 0.50, "postgresql": 0.70}  # tidegate rows/s at least this x baseline
RSS_GOAL_MIB = 150.0  # peak RSS of `tidegate export tables` below this at every size
RSS_FLAT = 1.25  # "flat": peak RSS at the largest size at most 1.25 x at the smallest
TIDEGATE = [sys.executable, "-m", "tidegate"]

# --- the data: the same logical rows in both databases --------------------------------------

# One expression per column, written once: SQLite and PostgreSQL both run this SQL over
# `i` from 1 to the row count. The ratio is a full-precision double (dividing the same two
# integers gives the same double in both).
PARENT_VALUES = """
    i,
    'customer-' || (i % 5000),
    'user' || i || '@example.com',
    (i % 100000) / 100.0,
    {ratio},
    CASE i % 4 WHEN 0 THEN 'open' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped'
               ELSE 'cancelled' END,
    {created_at},
    CASE i % 10 WHEN 0 THEN 'line one, "quoted"' || {newline} || 'line two'
                WHEN 1 THEN NULL
                WHEN 2 THEN 'Zoë, café'
                ELSE 'note ' || i END"""
CHILD_VALUES = "(i - 1) / 3 + 1, (i - 1) % 3 + 1, 1 + i % 7, 'SKU-' || (i % 997)"

SQLITE_TABLES = """
CREATE TABLE parent (
    id INTEGER PRIMARY KEY, customer TEXT, email TEXT, amount NUMERIC(12,2), ratio REAL,
    status TEXT, created_at TIMESTAMP, note TEXT);
CREATE TABLE child (
    parent_id BIGINT, line_no INTEGER, qty INTEGER, sku TEXT,
    PRIMARY KEY (parent_id, line_no));
"""
SQLITE_PARENT = PARENT_VALUES.format(
    ratio="(i * 2654435761 % 1000003) / 1000003.0",
    created_at="datetime(1600000000 + i * 37, 'unixepoch')",
    newline="char(10)",
)
SQLITE_SERIES = "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n})"

PG_TABLES = """
CREATE TABLE parent (
    id bigint PRIMARY KEY, customer text, email text, amount numeric(12,2),
    ratio double precision, status text, created_at timestamp, note text);
CREATE TABLE child (
    parent_id bigint, line_no integer, qty integer, sku text,
    PRIMARY KEY (parent_id, line_no));
"""
PG_PARENT = PARENT_VALUES.format(
    ratio="(i * 2654435761 % 1000003)::double precision / 1000003",
    created_at="to_timestamp(1600000000 + i * 37) AT TIME ZONE 'UTC'",
    newline="chr(10)",
)
PG_SERIES = "generate_series(1::bigint, {n}) AS i"


@dataclass(frozen=True)
class Size:
    """One data set: rows in parent and in child."""

    parents: int
    children: int

    @property
    def rows(self) -> int:
        return self.parents + self.children


def make_sqlite_source(path: Path, size: Size) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(SQLITE_TABLES)
        for table, values, n in (
            ("parent", SQLITE_PARENT, size.parents),
            ("child", CHILD_VALUES, size.children),
        ):
            conn.execute(f"{SQLITE_SERIES.format(n=n)} INSERT INTO {table} SELECT {values} FROM g")
        conn.commit()
    finally:
        conn.close()


def make_pg_source(url: str, schema: str, size: Size) -> None:
    # The SQL is run without parameters, so its `%` are the modulo operator.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
        conn.execute(PG_TABLES)
        for table, values, n in (
            ("parent", PG_PARENT, size.parents),
            ("child", CHILD_VALUES, size.children),
        ):
            conn.execute(f"INSERT INTO {table} SELECT {values} FROM {PG_SERIES.format(n=n)}")
        # Set hint bits and the visibility map now, so that no measured reader pays for them.
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")


# --- measuring one command ------------------------------------------------------------------

# Used when GNU time is missing: runs the command and writes the peak RSS (KiB) of its
# process tree, which is all this wrapper's children ever had.


def combined(samples: list[Sample]) -> Sample:
    """Commands run one after another: wall times add up, peak RSS is the largest."""
    return Sample(sum(s.seconds for s in samples), max(s.rss_kib for s in samples))


def file_bytes(*paths: Path) -> int:
    total = 0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total


# --- one round of each case -----------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One case measured once."""

    seconds: float
    rss_kib: int
    out_bytes: int
    phases: dict[str, float]  # wall seconds of each phase, where the case has phases


@dataclass(frozen=True)
class Source:
    """A source ready to export: its tidegate URL and how the baseline reaches it."""

    database: str  # "sqlite" or "postgresql"
    url: str  # tidegate [source] url
    schema: str  # PostgreSQL schema ("" for SQLite)
    path: Path  # SQLite file (unused for PostgreSQL)
    size: Size


def sqlite_baseline(source: Source, work: Path) -> Result:
    """sqlite3 CLI to CSV, then `zip -1`, one table after the other."""
    dumps, zips, outputs = [], [], []
    for table in ("parent", "child"):
        csv_path, zip_path = work / f"{table}.csv", work / f"{table}.zip"
        query = f"SELECT * FROM {table}"
        dumps.append(
            measure(["sqlite3", "-csv", "-header", str(source.path), query], stdout=csv_path)[0]
        )
        zips.append(measure(["zip", "-1", "-q", zip_path.name, csv_path.name], cwd=work)[0])
        outputs.append(zip_path)
    total = combined(dumps + zips)
    phases = {"dump": combined(dumps).seconds, "zip": combined(zips).seconds}
    return Result(total.seconds, total.rss_kib, file_bytes(*outputs), phases)


def pg_baseline(source: Source, work: Path) -> Result:
    """psql COPY … TO STDOUT CSV piped through `gzip -1`, one table after the other."""
    samples, outputs = [], []
    for table in ("parent", "child"):
        copy = f"COPY (SELECT * FROM {source.schema}.{table}) TO STDOUT (FORMAT csv, HEADER)"
        psql = shlex.join(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", source.url, "-c", copy]
        )
        target = work / f"{table}.csv.gz"
        pipeline = ["bash", "-c", f"set -o pipefail; {psql} | gzip -1"]
        samples.append(measure(pipeline, stdout=target)[0])
        outputs.append(target)
    total = combined(samples)
    return Result(total.seconds, total.rss_kib, file_bytes(*outputs), {})


def tidegate_config(source: Source, work: Path) -> Path:
    config = work / "tidegate.toml"
    lines = ["[source]", f"url = {json.dumps(source.url)}"]
    if source.schema:
        lines.append(f"schema = {json.dumps(source.schema)}")
    lines += ["", "[output]", f"location = {json.dumps(str(work / 'exports'))}"]
    config.write_text("\n".join(lines) + "\n")
    return config


# tidegate's environment: this process's, or (--without-clients) one whose PATH finds
# neither psql nor sqlite3.
TIDEGATE_ENV: dict[str, str] | None = None


def tidegate_export(source: Source, work: Path) -> Result:
    """The timed first `tidegate export tables`, after an untimed `uninstall` (of the
    previous round's capture, if any) and `init`."""
    tidegate = [*TIDEGATE, "--config", str(tidegate_config(source, work))]
    for command in (["uninstall", "--yes"], ["init"]):
        done = subprocess.run(
            [*tidegate, *command], capture_output=True, text=True, check=False, env=TIDEGATE_ENV
        )
        if done.returncode != 0:
            raise RuntimeError(f"tidegate {command[0]} failed: {done.stderr.strip()}")
    sample, out = measure([*tidegate, "export", "tables"], cwd=work, env=TIDEGATE_ENV)
    # "<name>: snapshot, 2 table(s), <rows> row(s), <bytes> bytes"
    if f" {source.size.rows} row(s)" not in out or "snapshot" not in out:
        raise RuntimeError(f"expected a snapshot of {source.size.rows} rows, got: {out.strip()}")
    return Result(sample.seconds, sample.rss_kib, file_bytes(work / "exports"), {})


CASES = {
    "sqlite": ("raw: sqlite3 -csv, then zip -1", sqlite_baseline),
    "postgresql": ("raw: psql COPY | gzip -1", pg_baseline),
}
TIDEGATE_CASE = "tidegate export tables"


def measure_size(source: Source, rounds: int, scratch: Path) -> dict[str, list[Result]]:
    """Every round: the baseline and tidegate, in alternating order; outputs deleted after."""
    baseline_name, baseline = CASES[source.database]
    cases = [
        (baseline_name, lambda work: baseline(source, work)),
        (TIDEGATE_CASE, lambda work: tidegate_export(source, work)),
    ]
    label = f"{source.database:<10} {source.size.parents:>10,} parents"
    return run_rounds(cases, rounds, scratch, label)


# --- summary --------------------------------------------------------------------------------


def summarize(name: str, size: Size, results: list[Result]) -> dict[str, Any]:
    seconds = statistics.median(r.seconds for r in results)
    phases = {p: statistics.median(r.phases[p] for r in results) for p in results[0].phases}
    return {
        "case": name,
        "parents": size.parents,
        "children": size.children,
        "rows": size.rows,
        "seconds": seconds,
        "rows_per_s": size.rows / seconds,
        "out_mb": statistics.median(r.out_bytes for r in results) / 1e6,
        "peak_rss_mib": statistics.median(r.rss_kib for r in results) / 1024,
        "phases": phases,
        "rounds": [asdict(r) for r in results],
    }


def judge(database: str, rows: int, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The goals: throughput against the baseline at --rows, peak RSS at every size."""
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for case in cases:
        kind = "tidegate" if case["case"] == TIDEGATE_CASE else "baseline"
        by_size.setdefault(case["parents"], {})[kind] = case
    for pair in by_size.values():
        pair["tidegate"]["x_base"] = pair["tidegate"]["rows_per_s"] / pair["baseline"]["rows_per_s"]
        pair["baseline"]["x_base"] = 1.0
    ratio = by_size[rows]["tidegate"]["x_base"]
    rss = {size: pair["tidegate"]["peak_rss_mib"] for size, pair in sorted(by_size.items())}
    growth = rss[max(rss)] / rss[min(rss)]
    return {
        "throughput": {
            "goal": GOALS[database],
            "parents": rows,
            "ratio": ratio,
            "met": ratio >= GOALS[database],
        },
        "peak_rss": {
            "goal_mib": RSS_GOAL_MIB,
            "mib_by_parents": rss,
            "met": max(rss.values()) < RSS_GOAL_MIB,
        },
        "flat_rss": {"goal_growth": RSS_FLAT, "growth": growth, "met": growth <= RSS_FLAT},
    }


# --- running a database ---------------------------------------------------------------------


def sizes(args: argparse.Namespace) -> list[Size]:
    """Every size to run, smallest first; child rows in proportion to --child-rows."""
    child_rows = args.child_rows if args.child_rows is not None else args.rows
    parents = sorted(set(args.scales) | {args.rows})
    return [Size(p, round(p * child_rows / args.rows)) for p in parents]


def run_sqlite(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    cases = []
    for size in sizes(args):
        path = scratch / f"source_{size.parents}.db"
        progress(f"sqlite     building {size.parents:,} parents + {size.children:,} children")
        make_sqlite_source(path, size)
        source = Source("sqlite", f"sqlite:///{path}", "", path, size)
        for name, results in measure_size(source, args.rounds, scratch).items():
            cases.append(summarize(name, size, results))
        path.unlink()
    version = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout
    facts = {"sqlite3_cli": version.split()[0], "python_sqlite": sqlite3.sqlite_version}
    return {"facts": facts, "cases": cases, "goals": judge("sqlite", args.rows, cases)}


def run_postgresql(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    cases = []
    with scratch_database(args.url) as url:
        for size in sizes(args):
            schema = f"bench_{size.parents}"
            progress(f"postgresql building {size.parents:,} parents + {size.children:,} children")
            make_pg_source(url, schema, size)
            source = Source("postgresql", url, schema, Path(), size)
            for name, results in measure_size(source, args.rounds, scratch).items():
                cases.append(summarize(name, size, results))
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    facts = {"server_version": row[0] if row else "?"}
    return {"facts": facts, "cases": cases, "goals": judge("postgresql", args.rows, cases)}


# --- output ---------------------------------------------------------------------------------


def print_database(database: str, report: dict[str, Any], rounds: int) -> None:
    facts = ", ".join(f"{k} {v}" for k, v in report["facts"].items())
    print(f"{database}: {facts}; median of {rounds} round(s)")
    print(
        f"{'parents':>9} {'child':>9}  {'case':<32} {'wall s':>7} {'rows/s':>9} "
        f"{'out MB':>7} {'peak RSS MiB':>12} {'x base':>7}"
    )
    for c in report["cases"]:
        print(
            f"{c['parents']:>9,} {c['children']:>9,}  {c['case']:<32} {c['seconds']:>7.2f} "
            f"{c['rows_per_s']:>9,.0f} {c['out_mb']:>7.1f} {c['peak_rss_mib']:>12.1f} "
            f"{c['x_base']:>7.2f}"
        )
        for phase, seconds in c["phases"].items():
            print(f"{'':>21}    {phase} phase{'':<{26 - len(phase)}} {seconds:>7.2f}")
    goals = report["goals"]
    t, m, f = goals["throughput"], goals["peak_rss"], goals["flat_rss"]
    rss = ", ".join(f"{v:.1f} MiB @ {k:,}" for k, v in m["mib_by_parents"].items())
    print(
        f"goal: rows/s >= {t['goal']:.2f} x base at {t['parents']:,} parents: "
        f"{t['ratio']:.2f}  {verdict(t['met'])}"
    )
    print(f"goal: peak RSS < {m['goal_mib']:.0f} MiB: {rss}  {verdict(m['met'])}")
    print(
        f"goal: RSS flat (largest/smallest <= {f['goal_growth']:.2f}): {f['growth']:.2f}  "
        f"{verdict(f['met'])}"
    )
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="First tidegate table export vs a raw dump + compress, SQLite and PostgreSQL."
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL admin URL (%(default)s)")
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="parent rows compared (default: 1000000)"
    )
    parser.add_argument(
        "--child-rows", type=int, help="child rows at --rows (default: as many as --rows)"
    )
    parser.add_argument(
        "--scales",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[100_000, 1_000_000],
        help="parent-row counts at which peak RSS is measured; --rows is always one "
        "(default: 100000,1000000)",
    )
    parser.add_argument("--only", choices=DATABASES, help="run one database only")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; medians reported")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--without-clients",
        action="store_true",
        help="run tidegate where neither psql nor sqlite3 is on the PATH",
    )
    args = parser.parse_args(argv)
    if args.rows <= 0 or args.rounds <= 0 or any(n <= 0 for n in args.scales):
        parser.error("--rows, --rounds and --scales must be positive")
    if args.child_rows is not None and args.child_rows < 0:
        parser.error("--child-rows must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    databases = [args.only] if args.only else list(DATABASES)
    needed = {"sqlite": ["sqlite3", "zip"], "postgresql": ["psql", "gzip", "bash"]}
    missing = [tool for db in databases for tool in needed[db] if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing commands: {', '.join(missing)} (apt-get install -y sqlite3 zip)")
    # Let `kill` drop the scratch database and temporary files too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    runners = {"sqlite": run_sqlite, "postgresql": run_postgresql}
    commit = tidegate_commit()  # at the start: the code every round ran (unless changed mid-run)
    reports = {}
    with tempfile.TemporaryDirectory(prefix="tidegate_bench_") as scratch:
        if args.without_clients:
            global TIDEGATE_ENV
            empty = Path(scratch) / "no-clients-bin"
            empty.mkdir()
            TIDEGATE_ENV = {**os.environ, "PATH": str(empty)}
        for database in databases:
            reports[database] = runners[database](args, Path(scratch))
    if args.json:
        settings = {k: getattr(args, k) for k in ("rows", "child_rows", "scales", "rounds")}
        machine = {
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "tidegate_commit": commit,
        }
        print(json.dumps({"settings": settings, "machine": machine, **reports}, indent=2))
        return 0
    for database, report in reports.items():
        print_database(database, report, args.rounds)
    print(
        "rows/s: parent + child rows / wall s of the whole command(s); x base: rows/s over "
        "the raw baseline's at the same size; out MB = 10^6 bytes"
    )
    clients = ", without psql and sqlite3" if args.without_clients else ""
    print(f"tidegate {commit}{clients}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; scratch database dropped", file=sys.stderr)
        sys.exit(130)
