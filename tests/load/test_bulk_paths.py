"""Each target's bulk path is the one a load takes: MariaDB reads a member's records by
`LOAD DATA LOCAL INFILE` (rewritten so that NULL and "" stay apart) straight into the
table, and the target still equals the source, nasty text included; a member LOAD DATA
only warns about is rolled back and loaded through the stage, which refuses it."""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.load.conftest import TargetDb
from tests.load.helpers import assert_target_equals_source
from tests.load.test_roundtrip import change
from tests.tables.helpers import sample_tables
from tidegate import api
from tidegate.errors import LoadError
from tidegate.load import target as target_module


def _statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the loads from now on send to their target."""
    statements: list[str] = []
    make_engine = target_module.Target.__init__

    def listened(self: target_module.Target, url: str) -> None:
        make_engine(self, url)

        @sa.event.listens_for(self.engine, "before_cursor_execute")
        def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

    monkeypatch.setattr(target_module.Target, "__init__", listened)
    return statements


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_mariadb_loads_members_by_load_data(
    sqlite_source: Source, target: TargetDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = _statements(monkeypatch)
    sqlite_source.create(*sample_tables())
    config = sqlite_source.config(f"target.url={target.url}")
    tidegate.init(config)
    change(sqlite_source, random.Random(3), 30)
    tidegate.export_tables(config, until_caught_up=True)
    api.load(config)
    loads = [s for s in statements if s.startswith("LOAD DATA LOCAL INFILE")]
    assert any("REPLACE INTO TABLE parent" in s for s in loads), loads
    assert not any(s.startswith("INSERT INTO tidegate_stage") for s in statements)
    assert not any("INTO TABLE tidegate_stage" in s and "parent" in s for s in statements)
    assert_target_equals_source(sqlite_source, target, "parent", "child line")


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_member_load_data_warns_about_is_refused_through_the_stage(
    sqlite_source: Source, target: TargetDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps 10 characters in a VARCHAR(5); MariaDB's LOAD DATA would cut them with
    a warning. The direct load is rolled back, and the stage's strict insert refuses the
    value naming its column: nothing of the export is in the target."""
    codes = sa.Table(
        "codes",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(5)),
    )
    sqlite_source.create(codes)
    config = sqlite_source.config(f"target.url={target.url}")
    tidegate.init(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(codes.insert(), [{"id": 1, "code": "ok"}, {"id": 2, "code": "abcdefghij"}])
    tidegate.export_tables(config, until_caught_up=True)
    statements = _statements(monkeypatch)
    with pytest.raises(LoadError, match=r"column 'code'"):
        api.load(config)
    assert any("REPLACE INTO TABLE codes" in s for s in statements), statements
    assert any("INTO TABLE tidegate_stage" in s for s in statements), statements
    with target.engine().connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM codes").scalar() == 0
