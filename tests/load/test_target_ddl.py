"""`tidegate target-ddl`: the SQL `load` would run, for every target dialect, runnable."""

from __future__ import annotations

import pytest

import tidegate
from tests.conftest import Source
from tests.load.conftest import TargetDb
from tests.tables.helpers import sample_tables
from tests.test_cli import run


@pytest.fixture
def exported(sqlite_source: Source) -> Source:
    sqlite_source.create(*sample_tables())
    tidegate.init(sqlite_source.config())
    tidegate.export_tables(sqlite_source.config())
    return sqlite_source


def ddl(source: Source, *options: str) -> str:
    config = f'[output]\nlocation = "{source.tmp_path / "exports"}"\n'
    code, out, err = run(source.tmp_path, "target-ddl", *options, config=config)
    assert code == 0, err
    return out


def test_the_ddl_creates_every_exported_table_in_each_target(
    exported: Source, target: TargetDb
) -> None:
    text = ddl(exported, "--dialect", target.dialect)
    assert text.count("CREATE TABLE IF NOT EXISTS") == 2
    engine = target.engine()
    with engine.begin() as conn:
        for statement in filter(str.strip, text.split(";")):
            conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        for table in ("parent", "child line"):
            quoted = engine.dialect.identifier_preparer.quote(table)
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {quoted}").scalar() == 0


def test_partitioned_ddl_says_what_it_partitions_by(exported: Source) -> None:
    postgresql = ddl(exported, "--dialect", "postgresql", "--partitioned")
    assert "PARTITION BY HASH (id)" in postgresql
    assert "FOR VALUES WITH (MODULUS 8, REMAINDER 7)" in postgresql
    assert "PARTITION BY KEY (parent_id, code)" in ddl(
        exported, "--dialect", "mariadb", "--partitioned"
    )
    assert "no table partitioning" in ddl(exported, "--dialect", "sqlite", "--partitioned")


def test_an_unknown_dialect_is_one_error_line(exported: Source) -> None:
    config = f'[output]\nlocation = "{exported.tmp_path / "exports"}"\n'
    code, _out, err = run(exported.tmp_path, "target-ddl", "--dialect", "oracle", config=config)
    assert code == 1 and err.startswith("Error: --dialect 'oracle' is not a target dialect")
