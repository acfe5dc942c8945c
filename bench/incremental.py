"""What an incremental export and load cost after a TPC-H-sized snapshot: 0.1% and 1% of
the rows changed.

The source is PostgreSQL holding TPC-H's eight tables at scale factor 1 (8,661,245 rows:
lineitem 6,001,215, orders 1.5M, partsupp 800k, part 200k, customer 150k, supplier 10k,
nation, region), with TPC-H's keys, column types and row counts. The values come from
`generate_series` in SQL, not from `dbgen`: DuckDB's `tpch` extension cannot be installed
offline for the DuckDB this project uses, and what is measured here (how the cost follows
the changes) depends on the row counts and widths, not on the values.

Measured, each as its own process (wall time and peak RSS): `tidegate export tables`
and `tidegate load` (into an empty PostgreSQL database) of the snapshot; then, for each
fraction, an UPDATE of that fraction of every table's rows (untimed; capture records
them), `tidegate export tables --until-caught-up` and `tidegate load`. The target is
checked to hold every table's rows and the last change afterwards.

A cost that follows the changes shows as: the 1% step about 10x the 0.1% step (less a
fixed cost per run), both far below the snapshot's.

    .venv/bin/python bench/incremental.py                  # scale factor 1
    .venv/bin/python bench/incremental.py --scale 0.1      # a tenth of every table
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg
from harness import Sample, measure, progress, scratch_database, tidegate_commit

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TIDEGATE = [sys.executable, "-m", "tidegate"]
FRACTIONS = (0.001, 0.01)

# (table, rows at scale factor 1, key, DDL columns, generating SELECT over i = 1..rows)
TABLES = [
    (
        "region",
        5,
        "r_regionkey",
        "r_regionkey int PRIMARY KEY, r_name char(25), r_comment varchar(152)",
        "SELECT i, 'REGION' || i, md5(i::text)",
    ),
    (
        "nation",
        25,
        "n_nationkey",
        "n_nationkey int PRIMARY KEY, n_name char(25), n_regionkey int, n_comment varchar(152)",
        "SELECT i, 'NATION' || i, i % 5 + 1, md5(i::text)",
    ),
    (
        "supplier",
        10_000,
        "s_suppkey",
        "s_suppkey int PRIMARY KEY, s_name char(25), s_address varchar(40), s_nationkey int, "
        "s_phone char(15), s_acctbal numeric(15,2), s_comment varchar(101)",
        "SELECT i, 'Supplier#' || i, md5(i::text), i % 25 + 1, '27-918-335-' || i % 10000, "
        "(i % 1000000) / 100.0, md5((i * 7)::text)",
    ),
    (
        "customer",
        150_000,
        "c_custkey",
        "c_custkey int PRIMARY KEY, c_name varchar(25), c_address varchar(40), "
        "c_nationkey int, c_phone char(15), c_acctbal numeric(15,2), c_mktsegment char(10), "
        "c_comment varchar(117)",
        "SELECT i, 'Customer#' || i, md5(i::text), i % 25 + 1, '25-989-741-' || i % 10000, "
        "(i % 1000000) / 100.0, (ARRAY['BUILDING','AUTOMOBILE','MACHINERY'])[i % 3 + 1], "
        "md5((i * 3)::text) || md5(i::text)",
    ),
    (
        "part",
        200_000,
        "p_partkey",
        "p_partkey int PRIMARY KEY, p_name varchar(55), p_mfgr char(25), p_brand char(10), "
        "p_type varchar(25), p_size int, p_container char(10), p_retailprice numeric(15,2), "
        "p_comment varchar(23)",
        "SELECT i, 'part ' || md5(i::text), 'Manufacturer#' || i % 5, 'Brand#' || i % 55, "
        "'STANDARD POLISHED TIN', i % 50 + 1, 'JUMBO PKG', 900 + (i % 1000) / 10.0, "
        "left(md5(i::text), 20)",
    ),
    (
        "partsupp",
        800_000,
        "ps_partkey, ps_suppkey",
        "ps_partkey int, ps_suppkey int, ps_availqty int, ps_supplycost numeric(15,2), "
        "ps_comment varchar(199), PRIMARY KEY (ps_partkey, ps_suppkey)",
        "SELECT (i - 1) / 4 + 1, (i - 1) % 4 + 1, i % 9999 + 1, (i % 100000) / 100.0, "
        "md5(i::text) || md5((i * 5)::text) || md5((i * 11)::text)",
    ),
    (
        "orders",
        1_500_000,
        "o_orderkey",
        "o_orderkey bigint PRIMARY KEY, o_custkey int, o_orderstatus char(1), "
        "o_totalprice numeric(15,2), o_orderdate date, o_orderpriority char(15), "
        "o_clerk char(15), o_shippriority int, o_comment varchar(79)",
        "SELECT i, i % 150000 + 1, (ARRAY['O','F','P'])[i % 3 + 1], (i % 50000000) / 100.0, "
        "date '1992-01-01' + i % 2400, '1-URGENT', 'Clerk#' || i % 1000, 0, "
        "md5(i::text) || left(md5((i * 3)::text), 20)",
    ),
    (
        "lineitem",
        6_001_215,
        "l_orderkey, l_linenumber",
        "l_orderkey bigint, l_linenumber int, l_partkey int, l_suppkey int, "
        "l_quantity numeric(15,2), l_extendedprice numeric(15,2), l_discount numeric(15,2), "
        "l_tax numeric(15,2), l_returnflag char(1), l_linestatus char(1), l_shipdate date, "
        "l_commitdate date, l_receiptdate date, l_shipinstruct char(25), l_shipmode char(10), "
        "l_comment varchar(44), PRIMARY KEY (l_orderkey, l_linenumber)",
        "SELECT (i - 1) / 4 + 1, (i - 1) % 4 + 1, i % 200000 + 1, i % 10000 + 1, i % 50 + 1, "
        "(i % 10000000) / 100.0, (i % 10) / 100.0, (i % 8) / 100.0, "
        "(ARRAY['R','A','N'])[i % 3 + 1], (ARRAY['O','F'])[i % 2 + 1], "
        "date '1992-01-02' + i % 2500, date '1992-01-31' + i % 2500, "
        "date '1992-02-01' + i % 2500, 'DELIVER IN PERSON', 'TRUCK', left(md5(i::text), 30)",
    ),
]


def _rows(base: int, scale: float) -> int:
    return max(1, round(base * scale)) if base > 25 else base


def _make_source(url: str, scale: float) -> int:
    total = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for name, base, _key, columns, select in TABLES:
            rows = _rows(base, scale)
            progress(f"generating {name}: {rows:,} rows")
            conn.execute(f"CREATE TABLE {name} ({columns})")  # constants above, no input
            conn.execute(f"INSERT INTO {name} {select} FROM generate_series(1, {int(rows)}) i")
            conn.execute(f"ANALYZE {name}")
            total += rows
    return total


def _change(url: str, fraction: float, step: int) -> int:
    """UPDATE `fraction` of every table's rows (every 1/fraction-th by key); the count."""
    every = round(1 / fraction)
    changed = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for name, _base, key, columns, _select in TABLES:
            first = key.split(",")[0].strip()
            text = _changed_column(columns)
            done = conn.execute(
                f"UPDATE {name} SET {text} = left('step {step} ' || {text}, 20) "
                f"WHERE {first} % {int(every)} = {int(step % every)}"
            )
            changed += done.rowcount
    return changed


def _changed_column(columns: str) -> str:
    """The table's first varchar column, which the changes rewrite."""
    return next(c.split()[0] for c in columns.split(", ") if "varchar" in c)


def _tidegate(config: Path, *argv: str) -> Sample:
    sample, _ = measure([*TIDEGATE, "--config", str(config), *argv])
    return sample


def _check(source: str, target: str) -> None:
    with psycopg.connect(source) as left, psycopg.connect(target) as right:
        for name, _base, key, columns, _select in TABLES:
            text = _changed_column(columns)
            query = f"SELECT count(*), sum(hashtext(concat_ws('|', {key}, {text}))) FROM {name}"
            if left.execute(query).fetchone() != right.execute(query).fetchone():
                raise SystemExit(f"{name}: the target differs from the source")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="admin URL (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tidegate_bench_"))
    try:
        with scratch_database(options.url) as source, scratch_database(options.url) as target:
            total = _make_source(source, options.scale)
            config = work / "tidegate.toml"
            config.write_text(
                f'[source]\nurl = "{source}"\n[output]\nlocation = "{work / "exports"}"\n'
                f'[target]\nurl = "{target}"\n'
            )
            _tidegate(config, "init")
            print(
                f"{'step':<22}{'rows':>11}{'export s':>10}{'load s':>9}{'rows/s':>11}{'RSS MiB':>9}"
            )
            steps = [("snapshot", total, None)] + [
                (f"{fraction:.1%} changed", 0, fraction) for fraction in FRACTIONS
            ]
            for number, (label, rows, fraction) in enumerate(steps):
                if fraction is not None:
                    rows = _change(source, fraction, number)
                progress(f"{label}: exporting and loading")
                exported = _tidegate(config, "export", "tables", "--until-caught-up")
                loaded = _tidegate(config, "load")
                seconds = exported.seconds + loaded.seconds
                rss = max(exported.rss_kib, loaded.rss_kib) / 1024
                print(
                    f"{label:<22}{rows:>11,}{exported.seconds:>10.2f}{loaded.seconds:>9.2f}"
                    f"{rows / seconds:>11,.0f}{rss:>9.1f}"
                )
            _check(source, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"tidegate {tidegate_commit()}; every table equal in the target afterwards")


if __name__ == "__main__":
    main()
