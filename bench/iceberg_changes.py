"""What a change costs in an Iceberg target: a full load, then 0.1% and 1% of the rows
changed (spread over the table, and 1% clustered on the newest keys), each exported and
loaded by `tidegate load --target iceberg:///<dir>`.

The source is the table_export.py `parent` table on PostgreSQL (8 mixed columns), in a
scratch database dropped at the end. Each step's export (untimed) is followed by a timed
`tidegate load` process; the files and bytes it added to the warehouse are counted by
walking its directory before and after (data, manifests and metadata alike).

    .venv/bin/python bench/iceberg_changes.py                 # 1M rows
    .venv/bin/python bench/iceberg_changes.py --rows 200000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from harness import measure, progress, scratch_database, tidegate_commit
from table_export import Size, make_pg_source

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TIDEGATE = [sys.executable, "-m", "tidegate"]
# (step, the rows it changes, as a WHERE clause on id given the row count n)
STEPS = (
    ("full load (snapshot)", ""),
    ("0.1% spread", "id % 1000 = 0"),
    ("1% spread", "id % 100 = 0"),
    ("1% clustered", "id > {n} - {n} / 100"),  # the newest keys, as an OLTP table's
)


def _files(directory: Path) -> tuple[int, int]:
    """(files, bytes) under a directory."""
    count = size = 0
    for root, _dirs, names in os.walk(directory):
        for name in names:
            count += 1
            size += os.path.getsize(os.path.join(root, name))
    return count, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="admin URL (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    options = parser.parse_args()
    with scratch_database(options.url) as url, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        make_pg_source(url, "source", Size(options.rows, 0))
        warehouse = work / "warehouse"
        config = work / "tidegate.toml"
        config.write_text(
            f'[source]\nurl = "{url}"\nschema = "source"\n'
            f'[output]\nlocation = "{work / "exports"}"\n[tables]\ninclude = ["parent"]\n'
            f'[target]\nurl = "iceberg:///{warehouse}"\n'
        )
        tidegate = [*TIDEGATE, "-c", str(config)]
        subprocess.run([*tidegate, "init"], check=True, capture_output=True)
        print(f"{'step':<22}{'rows':>10}{'load s':>9}{'files':>8}{'MB written':>12}{'RSS MiB':>9}")
        for step, where in STEPS:
            changed = options.rows
            if where:
                condition = where.format(n=options.rows)
                with psycopg.connect(url, autocommit=True) as conn:
                    statement = f"UPDATE source.parent SET status = 'changed' WHERE {condition}"
                    changed = conn.execute(statement.encode()).rowcount
            progress(f"{step}: exporting")
            subprocess.run([*tidegate, "export", "tables"], check=True, capture_output=True)
            before = _files(warehouse) if warehouse.exists() else (0, 0)
            sample, _ = measure([*tidegate, "load"])
            after = _files(warehouse)
            print(
                f"{step:<22}{changed:>10,}{sample.seconds:>9.2f}{after[0] - before[0]:>8}"
                f"{(after[1] - before[1]) / 1e6:>12.1f}{sample.rss_kib / 1024:>9.1f}"
            )
    print(f"tidegate {tidegate_commit()}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
