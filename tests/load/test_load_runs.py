"""Every load is recorded in the target's run history (`tidegate_load_run`), failures with
their message, and `tidegate runs`, the API and the dashboard show loads beside the
source's jobs (SPEC, "Operations")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tidegate
from tests.conftest import Source
from tests.load.conftest import TargetDb
from tidegate import api
from tidegate.errors import LoadError
from tidegate.load.target import Target


def _runs_json(source: Source, target: TargetDb, *args: str) -> list[dict[str, object]]:
    options = [*source.cli_options(), "--set", f"target.url={target.url}"]
    result = subprocess.run(
        [sys.executable, "-m", "tidegate", *options, "runs", "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", ["postgresql", "sqlite"], indirect=True)
def test_loads_are_in_the_run_history_failures_with_their_message(
    sqlite_source: Source, target: TargetDb
) -> None:
    from tests.tables.helpers import sample_tables

    sqlite_source.create(*sample_tables())
    config = sqlite_source.config(f"target.url={target.url}")
    tidegate.init(config)
    tidegate.export_tables(config)
    api.load(config)
    api.load(config)  # nothing new: recorded too
    # The export damaged, and forgotten by the target: the third load refuses it.
    zip_path = next((sqlite_source.tmp_path / "exports").glob("export_*/*.zip"))
    zip_path.write_bytes(zip_path.read_bytes()[:-10])
    with target.engine().begin() as conn:
        conn.exec_driver_sql("DELETE FROM tidegate_applied")
    with pytest.raises(LoadError):
        api.load(config)

    loads = _runs_json(sqlite_source, target, "--job", "load")
    assert [(r["job"], r["run"], r["status"]) for r in loads] == [
        ("load", 3, "failed"),
        ("load", 2, "succeeded"),
        ("load", 1, "succeeded"),
    ]
    assert loads[2]["files"] == 1 and loads[2]["rows"] == 0  # one folder, an empty snapshot
    assert "zip" in str(loads[0]["error"]) or ".sha1" in str(loads[0]["error"])
    every = _runs_json(sqlite_source, target)
    assert {r["job"] for r in every} == {"init", "tables", "load"}
    started = [str(r["started_at"]) for r in every]
    assert started == sorted(started, reverse=True)  # newest first, both histories merged


def test_a_load_left_running_by_a_dead_process_is_marked_abandoned(
    sqlite_source: Source,
) -> None:
    from datetime import timedelta

    from tests.tables.helpers import sample_tables

    target_url = f"sqlite:///{sqlite_source.tmp_path / 'target.db'}"
    sqlite_source.create(*sample_tables())
    config = sqlite_source.config(f"target.url={target_url}")
    tidegate.init(config)
    tidegate.export_tables(config)
    target = Target(target_url)
    target.start_run(timedelta(days=7))  # a load that died before recording its end
    target.dispose()
    api.load(config)
    target = Target(target_url)
    runs = target.runs()
    target.dispose()
    assert [(r.run_number, r.status) for r in runs] == [(2, "succeeded"), (1, "abandoned")]
    assert runs[1].error == "the process running it stopped"
