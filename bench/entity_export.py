"""The initial entity export beside a hand-written merge-join export of the same entities.

Measures `tidegate export initial ORDERS --threads N` run as its own process on a freshly
initialised source, on SQLite and on PostgreSQL, against a hand-written baseline on the
same rows in the same run (BENCHMARKS.md's ``d_py_merge_orjson_isal_gz1``): a small Python
script, written by this one to a temporary file and run as its own process, that reads
``orders`` and ``order_lines`` with one query each, ordered by ``order_id`` (stdlib
``sqlite3`` cursors; psycopg server-side cursors in one REPEATABLE READ transaction),
merge-joins the two ordered streams, builds each record
``{"OBJ","TIMESTAMP","PK1","DATA":{"orders":[…],"order_lines":[…]}}`` with orjson, values
written as the entity format prescribes (NULL as "", texts right-trimmed, exact numerics
with every digit, date-times in UTC with microseconds and Z), and writes one gzip file at
level 1 (ISA-L's ``igzip`` when installed, as tidegate uses, else the stdlib's ``gzip``).
It imports nothing from tidegate.

Every measured command is a subprocess run under GNU ``/usr/bin/time -v`` (or, without it,
a small Python wrapper reading ``RUSAGE_CHILDREN``), which gives its peak RSS; wall time is
taken around it. The tidegate wall time includes Python start-up, reflection, the run
record and the manifest: everything the command does.

The data: ``orders`` (order_id bigint primary key, customer, status, total numeric(12,2),
placed timestamp, note with commas, quotes, a newline, trailing spaces, NULLs and
non-ASCII) and ``order_lines`` ((order_id, line_no) primary key, order_id a foreign key to
``orders``, sku, qty, price numeric(10,2)), ``--lines`` lines per order, the same logical
rows in both databases, generated in SQL. tidegate discovers the entity ``ORDERS`` from the
foreign key. Each size in ``--scales`` (plus ``--entities``) gets its own source, on which
``tidegate init`` runs once, untimed (it installs table capture triggers; harmless for
reads). At every size the baseline and ``--threads 1`` run; the other ``--threads`` run at
``--entities`` only. Throughput is judged at ``--entities``, memory at every size.

Checks, every round: tidegate's run manifest (``entities/INIT_EXPORT_<run>.manifest.json``)
counts exactly as many records as there are entities, and so does the baseline; every
output's records, read back in the manifest's order with TIMESTAMP left out, are compared
byte for byte with the baseline's (the script reports whether they are identical).

The PostgreSQL data lives in a scratch database ``tidegate_bench_<random>`` dropped at the
end, also on error, Ctrl-C or SIGTERM; temporary directories are removed. Cases take turns
going first from round to round.

Run it from the repository root (needs a PostgreSQL role that may create databases):

    .venv/bin/python bench/entity_export.py
    .venv/bin/python bench/entity_export.py --entities 20000 --scales 5000 --only sqlite
    .venv/bin/python bench/entity_export.py --rounds 3 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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
from harness import measure, progress, run_rounds, scratch_database, tidegate_commit, verdict
from psycopg import sql

try:
    from isal import igzip as gzip_reader
except ImportError:  # pragma: no cover - tidegate itself needs isal
    import gzip as gzip_reader  # type: ignore[no-redef]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASES = ("sqlite", "postgresql")
ENTITY = "ORDERS"
THROUGHPUT_GOAL = 0.50  # tidegate --threads 1 entities/s at least this x the baseline's
RSS_FLAT = 1.25  # "flat": peak RSS at the largest size at most 1.25 x at the smallest
TIDEGATE = [sys.executable, "-m", "tidegate"]
BASELINE_CASE = "baseline: py merge-join"

# --- the data: the same logical rows in both databases --------------------------------------

# One expression per column, written once: SQLite and PostgreSQL both run this SQL over
# `i` from 1 to the row count.
ORDER_VALUES = """
    i,
    'customer-' || (i % 5000),
    CASE i % 4 WHEN 0 THEN 'open' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped'
               ELSE 'cancelled' END,
    (i % 100000) / 100.0,
    {placed},
    CASE i % 10 WHEN 0 THEN 'line one, "quoted"' || {newline} || 'line two'
                WHEN 1 THEN NULL
                WHEN 2 THEN 'Zoë, café  '
                ELSE 'note ' || i END"""
LINE_VALUES = (
    "(i - 1) / {lines} + 1, (i - 1) % {lines} + 1, 'SKU-' || (i % 997), 1 + i % 7, "
    "(i % 10000) / 100.0"
)
TABLES = """
CREATE TABLE orders (
    order_id bigint PRIMARY KEY, customer text, status text, total numeric(12,2),
    placed timestamp, note text);
CREATE TABLE order_lines (
    order_id bigint, line_no integer, sku text, qty integer, price numeric(10,2),
    PRIMARY KEY (order_id, line_no),
    FOREIGN KEY (order_id) REFERENCES orders (order_id));
"""
SQLITE_ORDER = ORDER_VALUES.format(
    placed="datetime(1600000000 + i * 37, 'unixepoch')", newline="char(10)"
)
SQLITE_SERIES = "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n})"
PG_ORDER = ORDER_VALUES.format(
    placed="to_timestamp(1600000000 + i * 37) AT TIME ZONE 'UTC'", newline="chr(10)"
)
PG_SERIES = "generate_series(1::bigint, {n}) AS i"


@dataclass(frozen=True)
class Size:
    """One data set: entities (orders) and their child rows (order lines)."""

    entities: int
    lines: int  # per entity

    @property
    def children(self) -> int:
        return self.entities * self.lines


def make_sqlite_source(path: Path, size: Size) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(TABLES)
        for table, values, n in (
            ("orders", SQLITE_ORDER, size.entities),
            ("order_lines", LINE_VALUES.format(lines=size.lines), size.children),
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
        conn.execute(TABLES)
        for table, values, n in (
            ("orders", PG_ORDER, size.entities),
            ("order_lines", LINE_VALUES.format(lines=size.lines), size.children),
        ):
            conn.execute(f"INSERT INTO {table} SELECT {values} FROM {PG_SERIES.format(n=n)}")
        # Set hint bits and the visibility map now, so that no measured reader pays for them.
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")


# --- the hand-written baseline --------------------------------------------------------------

# Run as `python baseline.py sqlite|postgresql <path or url> <schema> <out.json.gz>`; prints
# the number of records written. Written for this schema, as a hand-written export would be.
BASELINE = """
import sys
from datetime import UTC, datetime

import orjson

try:
    from isal import igzip as gzip
except ImportError:
    import gzip

dialect, target, schema, out = sys.argv[1:5]
ORDERS = "SELECT order_id, customer, status, total, placed, note FROM {}orders ORDER BY order_id"
LINES = "SELECT order_id, line_no, sku, qty, price FROM {}order_lines ORDER BY order_id, line_no"

if dialect == "sqlite":
    import sqlite3

    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("BEGIN")  # one read transaction: one consistent state
    orders = conn.execute(ORDERS.format(""))
    lines = conn.execute(LINES.format(""))

    def stamp(value):  # SQLite keeps timestamps as ISO text; naive means UTC here
        if value is None:
            return ""
        return datetime.fromisoformat(value).isoformat(timespec="microseconds") + "Z"

else:
    import psycopg
    from psycopg.adapt import Loader

    class DigitsLoader(Loader):  # numeric as the server writes it: every digit kept
        def load(self, data):
            return orjson.Fragment(bytes(data))

    conn = psycopg.connect(target)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.adapters.register_loader("numeric", DigitsLoader)
    prefix = '"' + schema.replace('"', '""') + '".'
    orders = conn.cursor(name="orders")
    lines = conn.cursor(name="order_lines")
    orders.itersize = lines.itersize = 10_000
    orders.execute(ORDERS.format(prefix))
    lines.execute(LINES.format(prefix))

    def stamp(value):  # naive timestamps are UTC here
        if value is None:
            return ""
        return value.isoformat(timespec="microseconds") + "Z"


snapshot = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
line_rows = iter(lines)
pending = next(line_rows, None)
count = 0
chunk = []
with gzip.open(out, "wb", compresslevel=1) as sink:
    for order_id, customer, status, total, placed, note in orders:
        children = []
        while pending is not None and pending[0] <= order_id:
            if pending[0] == order_id:
                parent, line_no, sku, qty, price = pending
                children.append(
                    {
                        "order_id": parent,
                        "line_no": "" if line_no is None else line_no,
                        "sku": sku.rstrip(" ") if sku else "",
                        "qty": "" if qty is None else qty,
                        "price": "" if price is None else price,
                    }
                )
            pending = next(line_rows, None)
        record = {
            "OBJ": "ORDERS",
            "TIMESTAMP": snapshot,
            "PK1": str(order_id),
            "DATA": {
                "orders": [
                    {
                        "order_id": order_id,
                        "customer": customer.rstrip(" ") if customer else "",
                        "status": status.rstrip(" ") if status else "",
                        "total": "" if total is None else total,
                        "placed": stamp(placed),
                        "note": note.rstrip(" ") if note else "",
                    }
                ],
                "order_lines": children,
            },
        }
        chunk.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        count += 1
        if len(chunk) == 1000:
            sink.write(b"".join(chunk))
            chunk.clear()
    sink.write(b"".join(chunk))
conn.close()
print(count)
"""

# --- measuring one command ------------------------------------------------------------------

# Used when GNU time is missing: runs the command and writes the peak RSS (KiB) of its
# process tree, which is all this wrapper's children ever had.


def content_digest(files: list[Path]) -> tuple[int, str]:
    """Records in the gzip JSON Lines files, in order, and a sha1 of them with the TIMESTAMP
    field left out (the one field that differs between two exports of the same state)."""
    digest = hashlib.sha1()
    count = 0
    for path in files:
        with gzip_reader.open(path, "rb") as lines:
            for line in lines:
                cut, rest = line.index(b',"TIMESTAMP":'), line.index(b',"PK1":')
                digest.update(line[:cut])
                digest.update(line[rest:])
                count += 1
    return count, digest.hexdigest()


# --- one round of each case -----------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One case measured once."""

    seconds: float
    rss_kib: int
    out_bytes: int
    records: int
    digest: str  # sha1 of the records without TIMESTAMP


@dataclass(frozen=True)
class Source:
    """A source ready to export: its tidegate URL and how the baseline reaches it."""

    database: str  # "sqlite" or "postgresql"
    url: str  # tidegate [source] url
    schema: str  # PostgreSQL schema ("" for SQLite)
    path: Path  # SQLite file (unused for PostgreSQL)
    size: Size


def baseline_export(source: Source, work: Path, script: Path) -> Result:
    """The hand-written merge-join export, as its own process."""
    target = str(source.path) if source.database == "sqlite" else source.url
    out = work / "baseline.json.gz"
    argv = [sys.executable, str(script), source.database, target, source.schema, str(out)]
    sample, printed = measure(argv, cwd=work)
    if int(printed.strip()) != source.size.entities:
        raise RuntimeError(f"baseline wrote {printed.strip()} records, not {source.size.entities}")
    records, digest = content_digest([out])
    return Result(sample.seconds, sample.rss_kib, out.stat().st_size, records, digest)


def tidegate_config(source: Source, work: Path) -> Path:
    config = work / "tidegate.toml"
    lines = ["[source]", f"url = {json.dumps(source.url)}"]
    if source.schema:
        lines.append(f"schema = {json.dumps(source.schema)}")
    lines += ["", "[output]", f"location = {json.dumps(str(work / 'exports'))}"]
    config.write_text("\n".join(lines) + "\n")
    return config


def tidegate_init(source: Source, scratch: Path) -> None:
    """`tidegate init` once per source, untimed."""
    work = Path(tempfile.mkdtemp(dir=scratch))
    try:
        argv = [*TIDEGATE, "--config", str(tidegate_config(source, work)), "init"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"tidegate init failed: {done.stderr.strip()}")
    finally:
        shutil.rmtree(work)


def tidegate_export(source: Source, work: Path, threads: int) -> Result:
    """The timed `tidegate export initial ORDERS --threads N`; its manifest checked."""
    config = tidegate_config(source, work)
    argv = [*TIDEGATE, "--config", str(config), "export", "initial", ENTITY]
    sample, out = measure([*argv, "--threads", str(threads)], cwd=work)
    folder = work / "exports" / "entities"
    manifests = sorted(folder.glob("INIT_EXPORT_*.manifest.json"))
    if len(manifests) != 1:
        raise RuntimeError(f"expected one manifest in {folder}, found {manifests}: {out.strip()}")
    manifest = json.loads(manifests[0].read_text())
    if manifest["records"] != source.size.entities:
        raise RuntimeError(
            f"tidegate's manifest counts {manifest['records']} records, not {source.size.entities}"
        )
    files = [folder / f["name"] for f in manifest["files"]]  # entity, thread, seq order
    records, digest = content_digest(files)
    if records != source.size.entities:
        raise RuntimeError(f"tidegate's files hold {records} records, not {source.size.entities}")
    out_bytes = sum(f.stat().st_size for f in files)
    return Result(sample.seconds, sample.rss_kib, out_bytes, records, digest)


def tidegate_case(threads: int) -> str:
    return f"tidegate --threads {threads}"


def measure_size(
    source: Source, threads: list[int], rounds: int, scratch: Path, script: Path
) -> dict[str, list[Result]]:
    """Every round: the baseline and each thread count, the order rotating from round to
    round; outputs deleted after."""
    cases: list[tuple[str, Any]] = [
        (BASELINE_CASE, lambda work: baseline_export(source, work, script)),
        *[(tidegate_case(n), lambda work, n=n: tidegate_export(source, work, n)) for n in threads],
    ]
    label = f"{source.database:<10} {source.size.entities:>9,} entities"
    return run_rounds(cases, rounds, scratch, label)


# --- summary --------------------------------------------------------------------------------


def summarize(name: str, size: Size, results: list[Result]) -> dict[str, Any]:
    seconds = statistics.median(r.seconds for r in results)
    return {
        "case": name,
        "entities": size.entities,
        "children": size.children,
        "seconds": seconds,
        "entities_per_s": size.entities / seconds,
        "out_mb": statistics.median(r.out_bytes for r in results) / 1e6,
        "peak_rss_mib": statistics.median(r.rss_kib for r in results) / 1024,
        "rounds": [asdict(r) for r in results],
    }


def judge(entities: int, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The goals: 1-thread throughput against the baseline at --entities, flat peak RSS of
    1-thread tidegate across sizes; and whether every output equals the baseline's."""
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for case in cases:
        by_size.setdefault(case["entities"], {})[case["case"]] = case
    identical = True
    for pair in by_size.values():
        base = pair[BASELINE_CASE]
        digests = {r["digest"] for c in pair.values() for r in c["rounds"]}
        identical = identical and len(digests) == 1
        for case in pair.values():
            case["x_base"] = case["entities_per_s"] / base["entities_per_s"]
    one = tidegate_case(1)
    ratio = by_size[entities][one]["x_base"]
    rss = {size: pair[one]["peak_rss_mib"] for size, pair in sorted(by_size.items())}
    base_rss = {size: pair[BASELINE_CASE]["peak_rss_mib"] for size, pair in sorted(by_size.items())}
    growth = rss[max(rss)] / rss[min(rss)]
    return {
        "throughput": {
            "goal": THROUGHPUT_GOAL,
            "entities": entities,
            "ratio": ratio,
            "met": ratio >= THROUGHPUT_GOAL,
        },
        "flat_rss": {
            "goal_growth": RSS_FLAT,
            "mib_by_entities": rss,
            "baseline_mib_by_entities": base_rss,
            "growth": growth,
            "met": growth <= RSS_FLAT,
        },
        "identical_to_baseline": identical,
    }


# --- running a database ---------------------------------------------------------------------


def sizes(args: argparse.Namespace) -> list[Size]:
    return [Size(n, args.lines) for n in sorted(set(args.scales) | {args.entities})]


def threads_at(args: argparse.Namespace, size: Size) -> list[int]:
    """Every --threads at --entities; 1 thread only at the other sizes."""
    return sorted({1, *args.threads}) if size.entities == args.entities else [1]


def run_sqlite(args: argparse.Namespace, scratch: Path, script: Path) -> dict[str, Any]:
    cases = []
    for size in sizes(args):
        path = scratch / f"source_{size.entities}.db"
        progress(f"sqlite     building {size.entities:,} orders + {size.children:,} lines")
        make_sqlite_source(path, size)
        source = Source("sqlite", f"sqlite:///{path}", "", path, size)
        tidegate_init(source, scratch)
        measured = measure_size(source, threads_at(args, size), args.rounds, scratch, script)
        cases += [summarize(name, size, results) for name, results in measured.items()]
        path.unlink()
    version = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout
    facts = {"python_sqlite": sqlite3.sqlite_version, "sqlite3_cli": version.split()[0]}
    return {"facts": facts, "cases": cases, "goals": judge(args.entities, cases)}


def run_postgresql(args: argparse.Namespace, scratch: Path, script: Path) -> dict[str, Any]:
    cases = []
    with scratch_database(args.url) as url:
        for size in sizes(args):
            schema = f"bench_{size.entities}"
            progress(f"postgresql building {size.entities:,} orders + {size.children:,} lines")
            make_pg_source(url, schema, size)
            source = Source("postgresql", url, schema, Path(), size)
            tidegate_init(source, scratch)
            measured = measure_size(source, threads_at(args, size), args.rounds, scratch, script)
            cases += [summarize(name, size, results) for name, results in measured.items()]
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    facts = {"server_version": row[0] if row else "?"}
    return {"facts": facts, "cases": cases, "goals": judge(args.entities, cases)}


# --- output ---------------------------------------------------------------------------------


def print_database(database: str, report: dict[str, Any], rounds: int) -> None:
    facts = ", ".join(f"{k} {v}" for k, v in report["facts"].items())
    print(f"{database}: {facts}; median of {rounds} round(s)")
    print(
        f"{'entities':>9} {'lines':>9}  {'case':<24} {'wall s':>7} {'entities/s':>10} "
        f"{'out MB':>7} {'peak RSS MiB':>12} {'x base':>7}"
    )
    for c in report["cases"]:
        print(
            f"{c['entities']:>9,} {c['children']:>9,}  {c['case']:<24} {c['seconds']:>7.2f} "
            f"{c['entities_per_s']:>10,.0f} {c['out_mb']:>7.1f} {c['peak_rss_mib']:>12.1f} "
            f"{c['x_base']:>7.2f}"
        )
    goals = report["goals"]
    t, f = goals["throughput"], goals["flat_rss"]
    rss = ", ".join(f"{v:.1f} MiB @ {k:,}" for k, v in f["mib_by_entities"].items())
    print(
        f"goal: entities/s (1 thread) >= {t['goal']:.2f} x base at {t['entities']:,} entities: "
        f"{t['ratio']:.2f}  {verdict(t['met'])}"
    )
    print(
        f"goal: RSS flat (1 thread; largest/smallest <= {f['goal_growth']:.2f}): {rss}; "
        f"{f['growth']:.2f}  {verdict(f['met'])}"
    )
    same = "yes" if goals["identical_to_baseline"] else "NO"
    print(f"records: as many as entities in every output; equal to the baseline's: {same}")
    print()


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="tidegate's initial entity export vs a hand-written merge-join export, "
        "SQLite and PostgreSQL."
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL admin URL (%(default)s)")
    parser.add_argument(
        "--entities", type=int, default=100_000, help="entities compared (default: 100000)"
    )
    parser.add_argument("--lines", type=int, default=3, help="order lines per order (default: 3)")
    parser.add_argument(
        "--threads",
        type=numbers,
        default=[1, 4],
        help="tidegate --threads values at --entities; 1 is always one (default: 1,4)",
    )
    parser.add_argument(
        "--scales",
        type=numbers,
        default=[10_000, 100_000],
        help="entity counts at which peak RSS is measured (1 thread); --entities is always "
        "one (default: 10000,100000)",
    )
    parser.add_argument("--only", choices=DATABASES, help="run one database only")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; medians reported")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.entities <= 0 or args.rounds <= 0 or any(n <= 0 for n in args.scales):
        parser.error("--entities, --rounds and --scales must be positive")
    if args.lines < 0 or any(n <= 0 or n > 64 for n in args.threads):
        parser.error("--lines must not be negative, --threads between 1 and 64")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    databases = [args.only] if args.only else list(DATABASES)
    # Let `kill` drop the scratch database and temporary files too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    runners = {"sqlite": run_sqlite, "postgresql": run_postgresql}
    commit = tidegate_commit()  # at the start: the code every round ran (unless changed mid-run)
    reports = {}
    with tempfile.TemporaryDirectory(prefix="tidegate_bench_") as scratch:
        script = Path(scratch) / "baseline_merge_join.py"
        script.write_text(BASELINE)
        for database in databases:
            reports[database] = runners[database](args, Path(scratch), script)
    if args.json:
        settings = {k: getattr(args, k) for k in ("entities", "lines", "threads", "scales")}
        machine = {
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "tidegate_commit": commit,
        }
        print(
            json.dumps(
                {"settings": {**settings, "rounds": args.rounds}, "machine": machine, **reports},
                indent=2,
            )
        )
        return 0
    for database, report in reports.items():
        print_database(database, report, args.rounds)
    print(
        "entities/s: entities / wall s of the whole command; x base: entities/s over the "
        "baseline's at the same size; out MB = 10^6 bytes"
    )
    print(f"tidegate {commit}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; scratch database dropped", file=sys.stderr)
        sys.exit(130)
