"""Iceberg warehouses behind another catalog than the local SQL one: a REST catalog (a
real server, tests/load/iceberg_rest.py) whose tables live in its S3 store, configured in
[target.iceberg] and loaded through the CLI, table exports and entity runs alike, read back
through the same catalog and compared with a DuckDB target loaded from the same exports."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import Source
from tests.entities.test_initial import enabled_orders
from tests.entities.test_ongoing import change_randomly
from tests.load.helpers import normal, rows
from tests.tables.helpers import sample_tables
from tests.tables.test_export import parent_values
from tidegate import api

pytest.importorskip("pyiceberg")
from pyiceberg.catalog import load_catalog

pytest_plugins = ["tests.load.iceberg_rest"]

KEYS = {
    "parent": ["id"],
    "orders": ["region", "order_no"],
    "order_lines": ["region", "order_no", "line_no"],
    "order_notes": ["region", "order_no"],
}


def _cli(source: Source, *args: str) -> str:
    """The CLI in a process of its own, with the config file the test wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "tidegate", "--config", str(source.tmp_path / "rest.toml"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TIDEGATE_"))},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _write_config(source: Source, namespace: str, catalog: dict[str, str]) -> None:
    lines = [
        f'[source]\nurl = "{source.url}"',
        *([f'schema = "{source.schema}"'] if source.schema else []),
        f'[output]\nlocation = "{source.tmp_path / "exports"}"',
        f'[target]\nurl = "iceberg:///{source.tmp_path / "lock"}"\nschema = "{namespace}"',
        "[target.iceberg]",
        *(f'"{key}" = "{value}"' for key, value in catalog.items()),
    ]
    (source.tmp_path / "rest.toml").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("source", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_table_exports_and_entity_runs_into_a_rest_catalog(
    source: Source, rest_catalog_properties: dict[str, str]
) -> None:
    # (Not "child line": this server keeps S3 Tables' names, a-z, 0-9, _ and - only; its
    # refusal of another name is passed on in one line, as any catalog's error.)
    parent = sample_tables()[0]
    source.create(parent)
    config = enabled_orders(source, 20)
    namespace = f"rest_{source.dialect}"  # the server is the session's: a namespace each
    _write_config(source, namespace, rest_catalog_properties)
    catalog = load_catalog("check", **rest_catalog_properties)
    reference = f"duckdb:///{source.tmp_path / 'reference.duckdb'}"
    rng = random.Random(3)
    _cli(source, "export", "initial")
    for round_number in range(3):
        with source.engine().begin() as conn:
            conn.execute(parent.delete().where(parent.c.id == rng.randint(1, 9)))
            for key in rng.sample(range(1, 12), 4):
                conn.execute(parent.delete().where(parent.c.id == key))
                conn.execute(parent.insert().values(parent_values(rng, key)))
        change_randomly(source, round_number + 1)
        _cli(source, "export", "tables")
        _cli(source, "export", "ongoing")
        out = _cli(source, "load")
        assert rest_catalog_properties["credential"].split(":")[1] not in out
        api.load(config, target_url=reference)
        engine = sa.create_engine(reference)
        for table, key in KEYS.items():
            held = catalog.load_table((namespace, table)).scan().to_arrow().to_pylist()
            got = {
                tuple(str(row[k]) for k in key): {c: normal(v, loose=False) for c, v in row.items()}
                for row in held
            }
            assert got == rows(engine, table, key, loose=False), (round_number, table)
        engine.dispose()


def test_a_rest_catalog_that_does_not_answer_is_one_line(sqlite_source: Source) -> None:
    from tests.test_cli import assert_one_error
    from tests.test_object_storage import _free_port

    source = sqlite_source
    _write_config(source, "x", {"type": "rest", "uri": f"http://127.0.0.1:{_free_port()}"})
    done = subprocess.run(
        [sys.executable, "-m", "tidegate", "--config", str(source.tmp_path / "rest.toml"), "load"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert_one_error(done.stderr, r"Error: target iceberg:///.*: .*(Connection|connect).*")
    assert "unexpected" not in done.stderr
    assert Path(source.tmp_path).exists()
