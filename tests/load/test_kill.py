"""Loads killed with SIGKILL at chosen points and at random moments, then run again: the
target ends equal to the source, no export applied twice."""

from __future__ import annotations

import os
import random
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
from tests.entities.test_initial import fill, order_tables
from tests.load.conftest import make_target
from tests.load.helpers import assert_target_equals_source
from tests.load.test_roundtrip import ENTITY_TABLES, change
from tests.tables.helpers import sample_tables
from tidegate import api

# A loader process; its second argument names a point to pause at (it prints PAUSED and
# sleeps there, and the test kills it).
LOADER = textwrap.dedent(r"""
    import sys, time
    import tidegate
    from tidegate import api
    from tidegate.load import entityrun, entitysql, staging, target

    def pause():
        print("PAUSED", flush=True)
        time.sleep(60)

    point = sys.argv[2] if len(sys.argv) > 2 else ""
    if point == "before-commit":
        original_record = target.Target.record_applied
        def record(self, conn, export, kind, position):
            original_record(self, conn, export, kind, position)
            pause()  # recorded as applied, not yet committed
        target.Target.record_applied = record
    loads = []
    def progress(step):
        loads.extend([step.doing] if step.doing.startswith("loading") else [])
        if point == "between-exports" and len(loads) == 2:
            pause()  # one export committed, the next not begun
    if point == "inside-merge":
        original_counted = staging.counted
        def counted(*args):
            original_counted(*args)
            pause()  # a table's rows loaded, the export's transaction open
        staging.counted = counted
    if point == "inside-entity-run":
        original_replace = entityrun._replace
        def replace(*args):
            original_replace(*args)
            pause()
        entityrun._replace = replace  # record by record
        original_versions = entitysql._replace_versions
        def versions(*args):
            applied = original_versions(*args)
            pause()  # set-based: versions replaced, no row yet
            return applied
        entitysql._replace_versions = versions
    api.load(tidegate.load_config(sys.argv[1], [], environ={}), progress=progress)
""")


def load_process(config: Path, point: str = "") -> subprocess.Popen[str]:
    arguments = [sys.executable, "-c", LOADER, str(config), *([point] if point else [])]
    return subprocess.Popen(arguments, stdout=subprocess.PIPE, text=True)


def kill(process: subprocess.Popen[str], point: str, rng: random.Random) -> None:
    assert process.stdout is not None
    if point:
        assert process.stdout.readline().strip() == "PAUSED"
    else:
        time.sleep(rng.random() * 0.6)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("target_kind", ["sqlite", "postgresql"])
def test_loads_killed_and_rerun_leave_the_target_equal_to_the_source(
    request: pytest.FixtureRequest, sqlite_source: Source, tmp_path: Path, target_kind: str
) -> None:
    source = sqlite_source
    target = make_target(request, target_kind, tmp_path)
    source.create(*sample_tables(), *order_tables())
    fill(source, 40)
    config = source.config(f"target.url={target.url}")
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    rng = random.Random(11)
    config_path = tmp_path / "load.toml"
    config_path.write_text(
        f'[source]\nurl = "{source.url}"\n[target]\nurl = "{target.url}"\n'
        f'[output]\nlocation = "{tmp_path / "exports"}"\n'
    )
    kills = 0
    for round_number in range(3):
        change(source, rng, 15)
        with source.engine().begin() as conn:
            conn.exec_driver_sql(f"UPDATE orders SET note = 'round {round_number}'")
        tidegate.export_tables(config, until_caught_up=True)
        if round_number == 0:
            api.export_initial(config, threads=2)
        else:
            api.export_ongoing(config, threads=2)
        points = ("inside-merge", "before-commit", "between-exports", "inside-entity-run", "")
        for point in points:
            kill(load_process(config_path, point), point, rng)
            kills += 1
        api.load(config)  # the one that finishes
        assert_target_equals_source(source, target, "parent", "child line")
        assert_target_equals_source(source, target, *ENTITY_TABLES, trimmed=True)
    assert kills == 15
    engine = target.engine()
    with engine.connect() as conn:
        applied = conn.execute(sa.text("SELECT export FROM tidegate_applied")).scalars().all()
    assert len(applied) == len(set(applied))
    target.dispose()
