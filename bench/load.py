"""`tidegate load` of a full export beside a raw bulk load of the same CSV.

A PostgreSQL source table `parent` (the table_export.py data: 8 mixed columns, text with
commas, quotes, newlines, NULLs and non-ASCII) is exported once by `tidegate export
tables` (untimed), and its `parent.csv` extracted from the zip (untimed). Then, each round,
into empty targets:

The eight loads take turns going first from round to round:

- PostgreSQL: `tidegate load LOCATION --target …` (a fresh schema) beside the raw baseline
  `psql -c "\\copy parent FROM 'parent.csv' CSV HEADER"` into an empty table of the same
  types;
- SQLite: `tidegate load LOCATION --target sqlite:///…` (a fresh file) beside the raw
  baseline `sqlite3 t.db ".import --csv --skip 1 parent.csv parent"` into an empty table;
- DuckDB: `tidegate load LOCATION --target duckdb:///…` (a fresh file) beside the raw
  baseline, DuckDB's own CSV reader (`INSERT INTO parent SELECT * FROM read_csv(…)`, in a
  Python process of its own) into an empty keyed table;
- MariaDB: `tidegate load LOCATION --target mysql://…` (a fresh database) beside the raw
  baseline `mariadb --local-infile -e "LOAD DATA LOCAL INFILE …"` into an empty keyed table.

Every command is its own process, timed as a whole with its peak RSS (GNU time). The
tidegate time includes Python start-up, reading and checking the zip (sha1 of the zip and
of every member, record counts), staging, the typed merge and its bookkeeping. Each
target is checked to hold every row afterwards. Throughput is judged at `--rows`; memory
at every size in `--scales` plus `--rows`.

Run from the repository root:

    .venv/bin/python bench/load.py                      # 1M rows (+100k for memory)
    .venv/bin/python bench/load.py --rows 200000 --scales 20000 --rounds 1
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
GOAL = 0.50  # tidegate rows/s at least this x the raw baseline's
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
}
PARENT_SQLITE = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY, customer TEXT, email TEXT, "
    "amount NUMERIC(12,2), ratio REAL, status TEXT, created_at TIMESTAMP, note TEXT)"
)


@dataclass(frozen=True)
class Result:
    seconds: float
    rss_kib: int


def export_once(url: str, schema: str, rows: int, work: Path) -> tuple[Path, Path]:
    """The source, its export (a location), and parent.csv extracted from it."""
    make_pg_source(url, schema, Size(rows, 0))
    config = work / "tidegate.toml"
    config.write_text(
        f'[source]\nurl = "{url}"\nschema = "{schema}"\n'
        f'[output]\nlocation = "{work / "exports"}"\n[tables]\ninclude = ["parent"]\n'
    )
    for command in (["init"], ["export", "tables"]):
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
    url: str, config: Path, csv_file: Path, location: Path, rows: int
) -> list[tuple[str, Any]]:
    """The four loads, each into an empty target of its own, each checked to hold every
    row; a case gets a fresh work directory."""
    schemas = itertools.count()
    tidegate_load = [*TIDEGATE, "-c", str(config), "load", str(location), "--target"]

    def pg_raw(work: Path) -> Result:
        schema, target = pg_target(url, next(schemas))
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(PG_TABLES.split(";")[0])
        copy = f"\\copy parent FROM '{csv_file}' CSV HEADER"
        sample, _ = measure(["psql", "-q", target, "-c", copy])
        assert count_pg(url, schema) == rows
        return Result(sample.seconds, sample.rss_kib)

    def pg_tidegate(work: Path) -> Result:
        schema, target = pg_target(url, next(schemas))
        sample, _ = measure([*tidegate_load, target])
        assert count_pg(url, schema) == rows, "tidegate did not load every row into PostgreSQL"
        return Result(sample.seconds, sample.rss_kib)

    def sqlite_raw(work: Path) -> Result:
        database = work / "raw.db"
        with sqlite3.connect(database) as conn:
            conn.execute(PARENT_SQLITE)
        sample, _ = measure(["sqlite3", str(database), f".import --csv --skip 1 {csv_file} parent"])
        assert count_sqlite(database) == rows
        return Result(sample.seconds, sample.rss_kib)

    def sqlite_tidegate(work: Path) -> Result:
        target = f"sqlite:///{work / 'tidegate.db'}"
        sample, _ = measure([*tidegate_load, target])
        assert count_sqlite(work / "tidegate.db") == rows, "tidegate did not load every row"
        return Result(sample.seconds, sample.rss_kib)

    def duckdb_raw(work: Path) -> Result:
        database = str(work / "raw.duckdb")
        sample, _ = measure(
            [sys.executable, "-c", DUCKDB_RAW, database, PARENT_DUCKDB, str(csv_file)]
        )
        assert count_duckdb(database) == rows
        return Result(sample.seconds, sample.rss_kib)

    def duckdb_tidegate(work: Path) -> Result:
        sample, _ = measure([*tidegate_load, f"duckdb:///{work / 'tidegate.duckdb'}"])
        assert count_duckdb(str(work / "tidegate.duckdb")) == rows, "not every row in DuckDB"
        return Result(sample.seconds, sample.rss_kib)

    def mariadb_raw(work: Path) -> Result:
        database = mariadb_target(next(schemas))
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

    def mariadb_tidegate(work: Path) -> Result:
        database = mariadb_target(next(schemas))
        sample, _ = measure([*tidegate_load, f"{MARIADB_URL}/{database}"])
        assert count_mariadb(database) == rows, "tidegate did not load every row into MariaDB"
        return Result(sample.seconds, sample.rss_kib)

    return [
        (RAW["postgresql"], pg_raw),
        ("postgresql tidegate load", pg_tidegate),
        (RAW["sqlite"], sqlite_raw),
        ("sqlite tidegate load", sqlite_tidegate),
        (RAW["duckdb"], duckdb_raw),
        ("duckdb tidegate load", duckdb_tidegate),
        (RAW["mariadb"], mariadb_raw),
        ("mariadb tidegate load", mariadb_tidegate),
    ]


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
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    sizes = sorted({*(int(s) for s in options.scales.split(",") if s), options.rows})
    medians: dict[int, dict[str, Result]] = {}
    for rows in sizes:
        rounds = options.rounds if rows == options.rows else 1
        with scratch_database(options.url) as url, tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)
            progress(f"exporting {rows:,} rows")
            config, csv_file = export_once(url, "source", rows, work)
            cases = load_cases(url, config, csv_file, work / "exports", rows)
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
        f"{'rows':>10}  {'case':<28} {'wall s':>7} {'rows/s':>10} {'peak RSS MiB':>13} {'x raw':>6}"
    )
    for rows, cases in medians.items():
        for case, result in cases.items():
            base = cases[RAW[case.split(" ")[0]]]
            ratio = base.seconds / result.seconds
            print(
                f"{rows:>10,}  {case:<28} {result.seconds:7.2f} "
                f"{rows / result.seconds:10,.0f} {result.rss_kib / 1024:13.1f} {ratio:6.2f}"
            )
    top = medians[options.rows]
    for database, raw in RAW.items():
        ratio = top[raw].seconds / top[f"{database} tidegate load"].seconds
        print(
            f"goal: {database} rows/s >= {GOAL:.2f} x raw at {options.rows:,}: "
            f"{ratio:.2f}  {verdict(ratio >= GOAL)}"
        )
        rss = [medians[rows][f"{database} tidegate load"].rss_kib for rows in medians]
        flat = max(rss) / min(rss)
        print(
            f"goal: {database} peak RSS flat (largest/smallest <= {RSS_FLAT}): "
            f"{flat:.2f}  {verdict(flat <= RSS_FLAT)}"
        )
    print(f"tidegate {tidegate_commit()}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
