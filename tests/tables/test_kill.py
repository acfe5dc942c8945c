"""`tidegate export tables` killed with SIGKILL at every stage, again and again.

Each round the application changes rows, then an export process starts and is killed: at a
chosen point inside the run (mid-claim, after the claim, mid-zip, just before the folder is
renamed into place, after publishing but before the export is recorded), or at a random
moment. After all rounds one ordinary run must leave an unbroken chain, no duplicate or
partial folder, and a rebuild equal to the source.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.tables.helpers import assert_rebuild_equals_source, sample_tables
from tests.tables.test_export import parent_values

# The export process. Its second argument names a point to pause at: it prints PAUSED and
# sleeps there, and the test kills it.
EXPORTER = textwrap.dedent(r"""
    import os, re, sys, time
    import sqlalchemy as sa
    import tidegate
    from tidegate.formats import tablezip
    from tidegate import storage

    point = sys.argv[2] if len(sys.argv) > 2 else ""

    def pause():
        print("PAUSED", flush=True)
        time.sleep(60)

    statements = {
        "claim": r"^insert into \S*tidegate_tick",
        "plan": r"^insert into \S*tidegate_export",
        "mark": r"^update \S*tidegate_export",
    }
    if point in statements:
        pattern = re.compile(statements[point])

        @sa.event.listens_for(sa.Engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            if pattern.search(" ".join(statement.lower().split())):
                pause()

    if point == "zip":
        original_add = tablezip.TableZipWriter.add
        calls = []

        def add(self, name, chunks):
            calls.append(name)
            if len(calls) == 2:
                def paused():
                    for number, chunk in enumerate(chunks):
                        if number == 1:
                            pause()
                        yield chunk
                return original_add(self, name, paused())
            return original_add(self, name, chunks)

        tablezip.TableZipWriter.add = add

    if point == "publish":
        original_rename = os.rename

        def rename(source, target):
            pause()
            original_rename(source, target)

        storage.os.rename = rename

    config = tidegate.load_config(sys.argv[1], [], environ={})
    tidegate.export_tables(config)
""")

POINTS = ["claim", "plan", "zip", "publish", "mark", "random"]


def change_rows(source: Source, parent: sa.Table, rng: random.Random, next_key: list[int]) -> None:
    with source.engine().begin() as conn:
        for _ in range(rng.randint(1, 30)):
            next_key[0] += 1
            conn.execute(parent.insert(), [parent_values(rng, next_key[0])])
        for _ in range(rng.randint(0, 10)):
            key = rng.randint(1, next_key[0])
            conn.execute(parent.update().where(parent.c.id == key).values(label=f"r{key}"))
        for _ in range(rng.randint(0, 5)):
            conn.execute(parent.delete().where(parent.c.id == rng.randint(1, next_key[0])))


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_export_killed_at_every_stage_loses_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, dialect: str
) -> None:
    from tests.conftest import _make_source

    source = next(_make_source(request, dialect, tmp_path))
    parent, child = sample_tables()
    source.create(parent, child)
    config = source.config()
    tidegate.init(config)
    config_path = tmp_path / "export.toml"
    config_path.write_text(
        f'[source]\nurl = "{source.url}"\nschema = "{source.schema}"\n'
        f'[output]\nlocation = "{tmp_path / "exports"}"\n'
    )
    rng = random.Random(20261124)
    next_key = [0]
    kills = 0
    for round_number in range(30):
        change_rows(source, parent, rng, next_key)
        point = POINTS[round_number % len(POINTS)]
        process = subprocess.Popen(
            [sys.executable, "-c", EXPORTER, str(config_path)]
            + ([] if point == "random" else [point]),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        if point == "random":
            time.sleep(rng.random() * 1.5)
        else:
            line = process.stdout.readline().strip()
            # A stage can be absent from a run (no zip member to pause in, say); then the
            # run finishes on its own.
            assert line in ("PAUSED", ""), line
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 20, f"only {kills} runs were killed while running"

    tidegate.export_tables(config, until_caught_up=True)
    exports = tmp_path / "exports"
    rebuilt = assert_rebuild_equals_source(source, exports, parent, child)
    keys = [int(re.match(r"export_(\d+)_", name).group(1)) for name in rebuilt.folders]  # type: ignore[union-attr]
    assert len(keys) == len(set(keys)), "two folders for one audit key"
    staging = exports / ".tidegate-staging"
    assert not staging.exists() or not any(staging.iterdir()), "a partial folder was left"
    statuses = {run.status for run in tidegate.list_runs(config, job="tables", limit=1000)}
    assert "running" not in statuses
    source.dispose()
