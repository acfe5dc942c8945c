"""An initial entity run loaded into PostgreSQL, beside a raw COPY of the same rows.

The source is a PostgreSQL table shaped like pgbench's accounts (`acct`: integer key, two
integers, a `char(84)` filler), enabled as the entity ACCT and exported by one initial
run. Measured, each as a process of its own under GNU ``/usr/bin/time`` (wall time and
peak RSS):

* ``tidegate load`` of that run into an empty scratch PostgreSQL target (the records
  turned into rows of `acct` there, the entity versions recorded), and
* the raw floor: ``psql -c "\\copy acct FROM acct.csv CSV"`` of the same rows, dumped
  beforehand with COPY, into an empty keyed `acct` of another scratch database.

Reported per size: seconds, records/s, peak RSS and the ratio to the floor. The sizes go
up by doubling, so a load that is not linear in its records shows at once (it once took
x3.2 per doubling).

    .venv/bin/python bench/entity_load.py
    .venv/bin/python bench/entity_load.py --sizes 20000,40000,80000 --rounds 1
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from harness import Sample, measure, progress, scratch_database, tidegate_commit

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TIDEGATE = [sys.executable, "-m", "tidegate"]
TABLE = "CREATE TABLE acct (aid int PRIMARY KEY, bid int, abalance int, filler char(84))"


def _source(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLE)
        conn.execute(
            "INSERT INTO acct SELECT i, i %% 10, 0, '' FROM generate_series(1, %s) i", (rows,)
        )


def _tidegate(work: Path, *argv: str) -> None:
    subprocess.run(
        [*TIDEGATE, "--config", str(work / "tidegate.toml"), *argv], check=True, capture_output=True
    )


def _exported(work: Path, source: str, target: str) -> None:
    (work / "tidegate.toml").write_text(
        f'[source]\nurl = "{source}"\n[output]\nlocation = "{work / "exports"}"\n'
        f'[target]\nurl = "{target}"\n'
    )
    _tidegate(work, "init")
    _tidegate(work, "entities", "enable", "ACCT", "--ongoing")
    _tidegate(work, "export", "initial", "ACCT")


def _floor(work: Path, source: str, target: str) -> Sample:
    dump = work / "acct.csv"
    with open(dump, "wb") as out:
        subprocess.run(["psql", source, "-c", "\\copy acct TO STDOUT CSV"], stdout=out, check=True)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(TABLE)
    sample, _ = measure(["psql", target, "-c", f"\\copy acct FROM '{dump}' CSV"])
    return sample


def _round(admin: str, rows: int) -> tuple[Sample, Sample]:
    with (
        scratch_database(admin) as source,
        scratch_database(admin) as target,
        scratch_database(admin) as floor_target,
    ):
        _source(source, rows)
        work = Path(tempfile.mkdtemp(prefix="tidegate_bench_"))
        try:
            _exported(work, source, target)
            loaded, _ = measure([*TIDEGATE, "--config", str(work / "tidegate.toml"), "load"])
            floor = _floor(work, source, floor_target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return loaded, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="admin URL (default: %(default)s)")
    parser.add_argument("--sizes", default="100000,200000,400000", help="records per run")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (default: 1)")
    options = parser.parse_args()
    print(f"{'records':>9}  {'case':<22}{'wall s':>8}{'records/s':>12}{'RSS MiB':>9}{'x raw':>7}")
    for rows in (int(size) for size in options.sizes.split(",")):
        samples = []
        for number in range(options.rounds):
            progress(f"{rows:,} records, round {number + 1}")
            samples.append(_round(options.url, rows))
        loaded = statistics.median(s[0].seconds for s in samples)
        floor = statistics.median(s[1].seconds for s in samples)
        for case, seconds, rss in (
            ("raw: psql \\copy", floor, max(s[1].rss_kib for s in samples)),
            ("tidegate load", loaded, max(s[0].rss_kib for s in samples)),
        ):
            print(
                f"{rows:>9,}  {case:<22}{seconds:>8.2f}{rows / seconds:>12,.0f}"
                f"{rss / 1024:>9.1f}{floor / seconds:>7.2f}"
            )
    print(f"tidegate {tidegate_commit()}, median of {options.rounds} round(s)")


if __name__ == "__main__":
    main()
