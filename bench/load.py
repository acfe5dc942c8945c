"""`tidegate load` of a full export and of an entity run, beside a raw bulk load of the
same rows, into every target.

A PostgreSQL source table `parent` (the table_export.py data: 8 mixed columns, text with
commas, quotes, newlines, NULLs and non-ASCII) is exported once by `tidegate export
tables` and once, enabled as the entity PARENT, by `tidegate export initial` (both
untimed), and its `parent.csv` extracted from the zip (untimed). Then, each round, into
empty targets, every case taking its turn to go first:

- PostgreSQL: `tidegate load LOCATION --only tables|entities --target …` (a fresh schema)
  beside the raw baseline `psql -c "\\copy parent FROM 'parent.csv' CSV HEADER"` into an
  empty table of the same types;
- SQLite: the same into a fresh file, beside `sqlite3 t.db ".import --csv --skip 1
  parent.csv parent"` into an empty table;
- DuckDB: the same into a fresh file, beside DuckDB's own CSV reader (`INSERT INTO parent
  SELECT * FROM read_csv(…)`, in a Python process of its own) into an empty keyed table;
- MariaDB: the same into a fresh database, beside `mariadb --local-infile -e "LOAD DATA
  LOCAL INFILE …"` into an empty keyed table;
- Iceberg: `tidegate load … --target iceberg:///<dir>` (a fresh
  warehouse) beside the same CSV read by Arrow into the columns' types and written as one
  Parquet file (`pyarrow.parquet.write_table`), in a Python process of its own.

The raw floor of an entity load is the same as a table load's: the entity run holds one
record per row of `parent`, and a load must end with the same rows in the same table
(plus, for the entity, a version per record).

Every command is its own process, timed as a whole with its peak RSS (GNU time). The
tidegate time includes Python start-up, reading and checking the files (sha1 of the zip
and of every member, record counts), the typed merge and its bookkeeping. Each target is
checked to hold every row afterwards. Throughput is judged at `--rows`; memory at every
size in `--scales` plus `--rows`.

Run from the repository root:

    .venv/bin/python bench/load.py                      # 1M rows (+100k for memory)
    .venv/bin/python bench/load.py --rows 200000 --scales 20000 --rounds 1
    .venv/bin/python bench/load.py --kinds tables       # table exports only
    .venv/bin/python bench/load.py --targets iceberg    # one target
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from harness import measure, progress, run_rounds, scratch_database, tidegate_commit, verdict
from psycopg import sql
from table_export import PG_TABLES, Size, make_pg_source

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# tidegate rows/s at least this x the raw baseline's, per (target, kind of load)
GOALS = {
    ("postgresql", "tables"): 0.70,
    ("sqlite", "tables"): 0.50,
    ("duckdb", "tables"): 0.70,
    ("mariadb", "tables"): 0.70,
    ("postgresql", "entities"): 0.50,
    ("iceberg", "tables"): 0.50,
}
KINDS = ("tables", "entities")
RSS_FLAT = 1.25
TIDEGATE = [sys.executable, "-m", "tidegate"]
MARIADB_URL = "mysql://root@127.0.0.1:3306"
PARENT_MARIADB = (
    "CREATE TABLE parent (id bigint PRIMARY KEY, customer text, email text, "
    "amount decimal(12,2), ratio double, status text, created_at datetime(6), note text) "
    "CHARACTER SET utf8mb4"
)
PARENT_DUCKDB = (
    "CREATE TABLE parent (id BIGINT PRIMARY KEY, customer TEXT, email TEXT, "
    "amount DECIMAL(12,2), ratio DOUBLE, status TEXT, created_at TIMESTAMP, note TEXT)"
)
# The raw DuckDB load: its CSV reader, in a process of its own as every other case.
DUCKDB_RAW = (
    "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute(sys.argv[2]); "
    'c.execute("INSERT INTO parent SELECT * FROM read_csv(?, header=true, '
    "columns={'id': 'BIGINT', 'customer': 'TEXT', 'email': 'TEXT', "
    "'amount': 'DECIMAL(12,2)', 'ratio': 'DOUBLE', 'status': 'TEXT', "
    "'created_at': 'TIMESTAMP', 'note': 'TEXT'})\", [sys.argv[3]])"
)
RAW = {
    "postgresql": "postgresql raw: psql \\copy",
    "sqlite": "sqlite raw: sqlite3 .import",
    "duckdb": "duckdb raw: read_csv",
    "mariadb": "mariadb raw: LOAD DATA",
    "iceberg": "iceberg raw: pyarrow Parquet",
}
# Target kinds whose entity-run loads are measured.
TAKES_ENTITIES = ("postgresql", "sqlite", "duckdb", "mariadb", "iceberg")
# The raw Iceberg floor: the same CSV read by Arrow into the columns' types and written as one
# Parquet file, in a process of its own (what a table's data file is, without the catalog).
PARQUET_RAW = (
    "import sys, pyarrow as pa, pyarrow.csv as c, pyarrow.parquet as q; "
    "types = {'id': pa.int64(), 'customer': pa.string(), 'email': pa.string(), "
    "'amount': pa.decimal128(12, 2), 'ratio': pa.float64(), 'status': pa.string(), "
    "'created_at': pa.timestamp('us'), 'note': pa.string()}; "
    "t = c.read_csv(sys.argv[1], parse_options=c.ParseOptions(newlines_in_values=True), "
    "convert_options=c.ConvertOptions(column_types=types, strings_can_be_null=True, "
    "quoted_strings_can_be_null=False)); "
    "q.write_table(t, sys.argv[2])"
)
PARENT_SQLITE = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY, customer TEXT, email TEXT, "
    "amount NUMERIC(12,2), ratio REAL, status TEXT, created_at TIMESTAMP, note TEXT)"
)


@dataclass(frozen=True)
class Result:
    seconds: float
    rss_kib: int


def export_once(
    url: str, schema: str, rows: int, work: Path, kinds: list[str]
) -> tuple[Path, Path]:
    """The source, its table export and entity run (one location), and parent.csv
    extracted from the table export."""
    make_pg_source(url, schema, Size(rows, 0))
    config = work / "tidegate.toml"
    config.write_text(
        f'[source]\nurl = "{url}"\nschema = "{schema}"\n'
        f'[output]\nlocation = "{work / "exports"}"\n[tables]\ninclude = ["parent"]\n'
    )
    commands = [["init"], ["export", "tables"]]
    if "entities" in kinds:
        commands += [["entities", "enable", "PARENT"], ["export", "initial", "PARENT"]]
    for command in commands:
        subprocess.run([*TIDEGATE, "-c", str(config), *command], check=True, capture_output=True)
    folder = next((work / "exports").glob("export_*"))
    with zipfile.ZipFile(next(folder.glob("*.zip"))) as archive:
        archive.extract("parent.csv", work)
    return config, work / "parent.csv"


def pg_target(url: str, number: int) -> tuple[str, str]:
    """A fresh schema: (its name, a URL whose search_path is it)."""
    schema = f"target_{number}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema, f"{url}?options=-csearch_path%3D{schema}"


def count_pg(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.parent").format(sql.Identifier(schema))
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


def count_sqlite(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM parent").fetchone()[0])


def load_cases(
    url: str, config: Path, csv_file: Path, location: Path, rows: int, kinds: list[str]
) -> list[tuple[str, Any]]:
    """Per target, its raw load and tidegate's load of each kind, each into an empty
    target of its own, each checked to hold every row; a case gets a fresh work
    directory."""
    numbers = itertools.count()
    tidegate_load = [*TIDEGATE, "-c", str(config), "load", str(location)]

    def pg_target_url(work: Path) -> tuple[str, Any]:
        schema, target = pg_target(url, next(numbers))
        return target, lambda: count_pg(url, schema)

    def sqlite_target_url(work: Path) -> tuple[str, Any]:
        return f"sqlite:///{work / 't.db'}", lambda: count_sqlite(work / "t.db")

    def duckdb_target_url(work: Path) -> tuple[str, Any]:
        database = str(work / "t.duckdb")
        return f"duckdb:///{database}", lambda: count_duckdb(database)

    def mariadb_target_url(work: Path) -> tuple[str, Any]:
        database = mariadb_target(next(numbers))
        return f"{MARIADB_URL}/{database}", lambda: count_mariadb(database)

    def iceberg_target_url(work: Path) -> tuple[str, Any]:
        warehouse = work / "warehouse"
        return f"iceberg:///{warehouse}", lambda: count_iceberg(warehouse)

    targets = {
        "postgresql": pg_target_url,
        "sqlite": sqlite_target_url,
        "duckdb": duckdb_target_url,
        "mariadb": mariadb_target_url,
        "iceberg": iceberg_target_url,
    }

    def tidegate_case(database: str, kind: str) -> Any:
        def case(work: Path) -> Result:
            target, count = targets[database](work)
            sample, _ = measure([*tidegate_load, "--only", kind, "--target", target])
            assert count() == rows, f"tidegate did not load every row into {database}"
            return Result(sample.seconds, sample.rss_kib)

        return case

    def pg_raw(work: Path) -> Result:
        schema, target = pg_target(url, next(numbers))
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(PG_TABLES.split(";")[0])
        copy = f"\\copy parent FROM '{csv_file}' CSV HEADER"
        sample, _ = measure(["psql", "-q", target, "-c", copy])
        assert count_pg(url, schema) == rows
        return Result(sample.seconds, sample.rss_kib)

    def sqlite_raw(work: Path) -> Result:
        database = work / "raw.db"
        with sqlite3.connect(database) as conn:
            conn.execute(PARENT_SQLITE)
        sample, _ = measure(["sqlite3", str(database), f".import --csv --skip 1 {csv_file} parent"])
        assert count_sqlite(database) == rows
        return Result(sample.seconds, sample.rss_kib)

    def duckdb_raw(work: Path) -> Result:
        database = str(work / "raw.duckdb")
        sample, _ = measure(
            [sys.executable, "-c", DUCKDB_RAW, database, PARENT_DUCKDB, str(csv_file)]
        )
        assert count_duckdb(database) == rows
        return Result(sample.seconds, sample.rss_kib)

    def mariadb_raw(work: Path) -> Result:
        database = mariadb_target(next(numbers))
        subprocess.run(
            ["mariadb", "-h", "127.0.0.1", "-u", "root", database, "-e", PARENT_MARIADB],
            check=True,
        )
        load_data = (
            f"LOAD DATA LOCAL INFILE '{csv_file}' INTO TABLE parent CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
            "LINES TERMINATED BY '\\n' IGNORE 1 LINES"
        )
        command = ["mariadb", "--local-infile=1", "-h", "127.0.0.1", "-u", "root", database]
        sample, _ = measure([*command, "-e", load_data])
        assert count_mariadb(database) == rows
        return Result(sample.seconds, sample.rss_kib)

    def iceberg_raw(work: Path) -> Result:
        parquet = work / "parent.parquet"
        sample, _ = measure([sys.executable, "-c", PARQUET_RAW, str(csv_file), str(parquet)])
        import pyarrow.parquet as pq

        assert pq.ParquetFile(parquet).metadata.num_rows == rows
        return Result(sample.seconds, sample.rss_kib)

    raws = {
        "postgresql": pg_raw,
        "sqlite": sqlite_raw,
        "duckdb": duckdb_raw,
        "mariadb": mariadb_raw,
        "iceberg": iceberg_raw,
    }
    return [
        case
        for database, raw in raws.items()
        for case in [
            (RAW[database], raw),
            *(
                (tidegate_case_name(database, kind), tidegate_case(database, kind))
                for kind in kinds
                if kind == "tables" or database in TAKES_ENTITIES
            ),
        ]
    ]


def tidegate_case_name(database: str, kind: str) -> str:
    return f"{database} tidegate load --only {kind}"


def mariadb_target(number: int) -> str:
    """A fresh, empty MariaDB database: its name."""
    database = f"tidegate_bench_load_{number}"
    statements = f"DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database}"
    subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-e", statements], check=True)
    return database


def count_mariadb(database: str) -> int:
    found = subprocess.run(
        [
            "mariadb",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-N",
            database,
            "-e",
            "SELECT count(*) FROM parent",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(found.stdout.strip())


def count_iceberg(warehouse: Path) -> int:
    from tidegate.load.iceberg import IcebergTarget

    return int(IcebergTarget(f"iceberg:///{warehouse}").read("parent").num_rows)


def count_duckdb(database: str) -> int:
    import duckdb

    with duckdb.connect(database, read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM parent").fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scales", default="100000", help="row counts for the memory check")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="tables, entities or both (default: both)"
    )
    parser.add_argument(
        "--targets", default=",".join(RAW), help=f"of {', '.join(RAW)} (default: all)"
    )
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    options.targets = [t for t in options.targets.split(",") if t]
    if not options.targets or set(options.targets) - set(RAW):
        parser.error(f"--targets takes some of {', '.join(RAW)}")
    options.kinds = [kind for kind in options.kinds.split(",") if kind]
    if not options.kinds or set(options.kinds) - set(KINDS):
        parser.error("--kinds takes tables, entities or tables,entities")
    sizes = sorted({*(int(s) for s in options.scales.split(",") if s), options.rows})
    medians: dict[int, dict[str, Result]] = {}
    for rows in sizes:
        rounds = options.rounds if rows == options.rows else 1
        with scratch_database(options.url) as url, tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)
            progress(f"exporting {rows:,} rows")
            config, csv_file = export_once(url, "source", rows, work, options.kinds)
            cases = [
                case
                for case in load_cases(url, config, csv_file, work / "exports", rows, options.kinds)
                if case[0].split(" ")[0] in options.targets
            ]
            collected = run_rounds(cases, rounds, work, f"{rows:>9,} rows")
            medians[rows] = {
                case: Result(
                    statistics.median(r.seconds for r in results), max(r.rss_kib for r in results)
                )
                for case, results in collected.items()
            }
            shutil.rmtree(work / "exports")
    report(medians, options)


def report(medians: dict[int, dict[str, Result]], options: argparse.Namespace) -> None:
    if options.json:
        print(
            json.dumps(
                {
                    rows: {c: r.__dict__ for c, r in cases.items()}
                    for rows, cases in medians.items()
                },
                indent=2,
            )
        )
        return
    print(f"median of {options.rounds} round(s) at {options.rows:,} rows (1 round at other sizes)")
    print(
        f"{'rows':>10}  {'case':<40} {'wall s':>7} {'rows/s':>10} {'peak RSS MiB':>13} {'x raw':>6}"
    )
    for rows, cases in medians.items():
        for case, result in cases.items():
            base = cases[RAW[case.split(" ")[0]]]
            ratio = base.seconds / result.seconds
            print(
                f"{rows:>10,}  {case:<40} {result.seconds:7.2f} "
                f"{rows / result.seconds:10,.0f} {result.rss_kib / 1024:13.1f} {ratio:6.2f}"
            )
    top = medians[options.rows]
    for database, raw in RAW.items():
        for kind in options.kinds:
            name = tidegate_case_name(database, kind)
            if name not in top or raw not in top:
                continue
            ratio = top[raw].seconds / top[name].seconds
            goal = GOALS.get((database, kind))
            judged = f"goal >= {goal:.2f}: {verdict(ratio >= goal)}" if goal else "no goal set"
            print(f"{name}: {ratio:.2f} x raw at {options.rows:,} ({judged})")
            rss = [medians[rows][name].rss_kib for rows in medians]
            flat = max(rss) / min(rss)
            print(
                f"{name}: peak RSS largest/smallest {flat:.2f} "
                f"(goal <= {RSS_FLAT}: {verdict(flat <= RSS_FLAT)})"
            )
    print(f"tidegate {tidegate_commit()}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
