"""Folders and runs already applied may be moved out of the location (archived): the next
load goes on from the target's own record of what it applied."""

from __future__ import annotations

import json
import random
import shutil

import tidegate
from tests.conftest import Source
from tests.entities.test_initial import fill, order_tables
from tests.load.conftest import TargetDb
from tests.load.helpers import assert_target_equals_source
from tests.load.test_roundtrip import change
from tests.tables.helpers import sample_tables
from tests.test_cli import run
from tidegate import api


def test_a_load_after_archiving_the_applied_exports_goes_on(sqlite_source: Source) -> None:
    source = sqlite_source
    source.create(*sample_tables(), *order_tables())
    fill(source, 4)
    config = source.config()
    tidegate.init(config)
    api.entities_enable(config, ["ORDERS"], ongoing=True)
    rng = random.Random(5)
    change(source, rng, 10)
    options = source.cli_options()
    exports = source.tmp_path / "exports"
    archive = source.tmp_path / "archive"
    archive.mkdir()
    for command in (["export", "tables"], ["export", "initial"], ["load"]):
        code, out, err = run(source.tmp_path, *options, *command)
        assert code == 0, out + err
    for _round in range(2):
        # Everything applied so far moves out of the location.
        for applied in [*exports.glob("export_*"), *(exports / "entities").glob("*")]:
            shutil.move(applied, archive / applied.name)
        change(source, rng, 8)
        with source.engine().begin() as conn:
            conn.exec_driver_sql("UPDATE orders SET note = 'moved on' WHERE order_no <= 2")
        for command in (["export", "tables"], ["export", "ongoing"], ["load"]):
            code, out, err = run(source.tmp_path, *options, *command)
            assert code == 0, f"{command}: {out}{err}"
        assert "loaded 1 table export(s)" in out and "1 entity run(s)" in out, out
        code, out, err = run(source.tmp_path, *options, "overview", "--json")
        assert code == 0, err
        load = json.loads(out)["load"]
        assert load["pending_table_exports"] == [] and load["pending_entity_runs"] == []
    target = TargetDb("sqlite", f"sqlite:///{source.tmp_path / 'target.db'}")
    assert_target_equals_source(source, target, "parent", "child line")
    target.dispose()
