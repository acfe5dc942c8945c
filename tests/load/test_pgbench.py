"""pgbench's own schema and client, which nobody here wrote: `pgbench_history` has no
primary key, `pgbench_accounts.filler` is a `char(84)` of spaces. `init` says which table
is keyless; every table reaches the target equal to the source after pgbench ran its
transactions, `pgbench_history` whole in every export after a change, or by the key that
`[tables] keys` names.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.load.conftest import TargetDb
from tests.load.helpers import assert_target_equals_source

TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers")
HISTORY_KEY = 'tables.keys.pgbench_history=["tid", "aid", "mtime"]'


def _pgbench(source: Source, *arguments: str) -> None:
    url = sa.make_url(source.url)
    environment = {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGDATABASE": url.database or "",
        "PGOPTIONS": f"-c search_path={source.schema}",
    }
    program = shutil.which("pgbench")
    if program is None:
        pytest.fail("pgbench is missing: apt-get install postgresql-client")
    subprocess.run([program, *arguments], env=environment, check=True, capture_output=True)


@pytest.mark.parametrize("source", ["postgresql"], indirect=True)
@pytest.mark.parametrize("target", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("keyed", [False, True], ids=["keyless", "keys"])
def test_pgbench_reaches_the_target_with_its_history(
    source: Source, target: TargetDb, keyed: bool
) -> None:
    _pgbench(source, "--initialize", "--scale=1", "--no-vacuum", "--quiet")
    config = source.config(*([HISTORY_KEY] if keyed else []), f"target.url={target.url}")
    report = tidegate.init(config)
    assert report.keyless == (() if keyed else ("pgbench_history",))
    assert "pgbench_history" in report.installed
    tidegate.export_tables(config, until_caught_up=True)
    tidegate.load(config)
    _pgbench(source, "--client=1", "--transactions=300", "--no-vacuum")
    tidegate.export_tables(config, until_caught_up=True)
    tidegate.load(config)
    compared = sum(
        assert_target_equals_source(source, target, table)
        for table in TABLES
        if table != "pgbench_history"
    )
    history = assert_target_equals_source(
        source, target, "pgbench_history", key=("tid", "aid", "mtime")
    )
    assert (compared, history) == (100_000 + 1 + 10, 300)
