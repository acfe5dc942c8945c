"""Each target's bulk path is the one a load takes: MariaDB reads a member's records by
`LOAD DATA LOCAL INFILE` (rewritten so that NULL and "" stay apart), and the target still
equals the source, nasty text included."""

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
from tidegate.load import target as target_module


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_mariadb_loads_members_by_load_data(
    sqlite_source: Source, target: TargetDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []
    make_engine = target_module.Target.__init__

    def listened(self: target_module.Target, url: str) -> None:
        make_engine(self, url)

        @sa.event.listens_for(self.engine, "before_cursor_execute")
        def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

    monkeypatch.setattr(target_module.Target, "__init__", listened)
    sqlite_source.create(*sample_tables())
    config = sqlite_source.config(f"target.url={target.url}")
    tidegate.init(config)
    change(sqlite_source, random.Random(3), 30)
    tidegate.export_tables(config, until_caught_up=True)
    api.load(config)
    loads = [s for s in statements if s.startswith("LOAD DATA LOCAL INFILE")]
    assert loads, "no member was read by LOAD DATA"
    assert not any(s.startswith("INSERT INTO tidegate_stage") for s in statements)
    assert_target_equals_source(sqlite_source, target, "parent", "child line")
