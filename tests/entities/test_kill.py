"""Initial and ongoing entity exports killed with SIGKILL at chosen points, then rerun."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import Source
from tests.entities.test_initial import enabled_orders, source_entities
from tests.entities.test_ongoing import apply_runs, change_randomly, normalised
from tidegate import api
from tidegate.errors import NoExports

# An exporter process; its third argument names a point to pause at (it prints PAUSED and
# sleeps there, and the test kills it).
EXPORTER = textwrap.dedent(r"""
    import re, sys, time
    import sqlalchemy as sa
    import tidegate
    from tidegate import api
    from tidegate.entities import files

    job, point = sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")

    def pause():
        print("PAUSED", flush=True)
        time.sleep(60)

    statements = {"claimed": r"^select \S*tidegate_entity_queue\.queue_id",
                  "removing": r"^delete from \S*tidegate_entity_queue"}
    if point in statements:
        pattern = re.compile(statements[point])

        @sa.event.listens_for(sa.Engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            if pattern.search(" ".join(statement.lower().split())):
                pause()

    if point == "writing":
        original = files.WorkerFiles.write
        def write(self, records):
            original(self, records)
            if self._records >= 2:  # some records written, the file not finished
                pause()
        files.WorkerFiles.write = write

    if point == "manifest":  # the manifest's file open, nothing written to it yet
        from tidegate.entities import initial, ongoing
        for module in (initial, ongoing):
            def manifest(*args, _original=module.run_manifest):
                pause()
                return _original(*args)
            module.run_manifest = manifest

    config = tidegate.load_config(sys.argv[1], [], environ={})
    if job == "initial":
        api.export_initial(config, threads=1)
    else:
        api.export_ongoing(config, threads=2)
""")


def export_process(config_path: Path, job: str, point: str) -> subprocess.Popen[str]:
    arguments = [sys.executable, "-c", EXPORTER, str(config_path), job]
    return subprocess.Popen(
        arguments + ([point] if point else []), stdout=subprocess.PIPE, text=True
    )


def kill(process: subprocess.Popen[str], point: str, rng: random.Random) -> bool:
    """Kill the process at its pause point (or at a random moment); True if it was killed."""
    assert process.stdout is not None
    if point:
        # Two worker threads may reach the point at once: "PAUSEDPAUSED".
        assert process.stdout.readline().strip().replace("PAUSED", "") == ""
    else:
        time.sleep(rng.random() * 1.2)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return killed


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_entity_exports_killed_and_rerun_lose_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, dialect: str
) -> None:
    from tests.conftest import _make_source

    source: Source = next(_make_source(request, dialect, tmp_path))
    config = enabled_orders(source, 30)
    config_path = tmp_path / "export.toml"
    config_path.write_text(
        f'[source]\nurl = "{source.url}"\nschema = "{source.schema}"\n'
        f'[output]\nlocation = "{tmp_path / "exports"}"\n'
    )
    rng = random.Random(5)

    # An initial export killed while writing is redone by the next one.
    assert kill(export_process(config_path, "initial", "writing"), "writing", rng)
    statuses = {s.entity.name: s for s in api.entities_list(config)}
    assert statuses["ORDERS"].initial_status == "in progress"
    redone = api.export_initial(config)
    assert redone is not None and redone.entities == ["ORDERS"]
    # The killed run's files (no manifest) are gone; only the finished run's are left.
    initial_files = {p.name for p in (tmp_path / "exports" / "entities").glob("INIT_EXPORT_*.gz")}
    assert initial_files == {f.name for f in redone.files}

    kills = 0
    for round_number, point in enumerate(
        ["claimed", "writing", "removing", "", "writing", "removing", "claimed", ""]
    ):
        change_randomly(source, 10 + round_number)
        kills += kill(export_process(config_path, "ongoing", point), point, rng)
    assert kills >= 6
    while any(r.records for r in api.export_ongoing(config, threads=2)):
        pass

    folder = tmp_path / "exports" / "entities"
    assert normalised(apply_runs(folder)) == normalised(source_entities(source))
    # Every ongoing file left belongs to a finished run (killed runs' files were removed).
    finished = {
        int(p.name.split("_")[2].split(".")[0]) for p in folder.glob("INC_EXPORT_*.manifest.json")
    }
    assert {int(p.name.split("_")[2]) for p in folder.glob("INC_EXPORT_*.gz")} <= finished
    for manifest_path in folder.glob("INC_EXPORT_*.manifest.json"):
        keys = []
        for entry in json.loads(manifest_path.read_text())["files"]:
            lines = gzip.decompress((folder / entry["name"]).read_bytes()).splitlines()
            keys += [tuple(json.loads(line)[k] for k in ("PK1", "PK2")) for line in lines]
        assert len(keys) == len(set(keys)), f"{manifest_path.name} holds an entity twice"
    source.dispose()


@pytest.mark.parametrize("job", ["initial", "ongoing"])
def test_a_run_killed_while_writing_its_manifest_leaves_none(
    sqlite_source: Source, tmp_path: Path, job: str
) -> None:
    """The manifest marks a run complete, so it appears whole or not at all: a run killed
    while writing it leaves no manifest (it once left an empty one, which verify and every
    later load refused), and the next run cleans up after it."""
    from tests.load.conftest import TargetDb
    from tests.load.helpers import assert_target_equals_source

    source = sqlite_source
    config = enabled_orders(source, 10)
    if job == "ongoing":
        api.export_initial(config)
        change_randomly(source, 3)
    config_path = tmp_path / "export.toml"
    config_path.write_text(
        f'[source]\nurl = "{source.url}"\n[output]\nlocation = "{tmp_path / "exports"}"\n'
    )
    assert kill(export_process(config_path, job, "manifest"), "manifest", random.Random(1))
    folder = tmp_path / "exports" / "entities"
    kind = "INIT_EXPORT" if job == "initial" else "INC_EXPORT"
    assert not list(folder.glob(f"{kind}_*.manifest.json"))
    if job == "initial":  # the unfinished run is no export: the location holds none yet
        with pytest.raises(NoExports):
            api.verify(config)
    else:
        _inventory, problems = api.verify(config)
        assert problems == []
    if job == "initial":
        api.export_initial(config)
    else:
        api.export_ongoing(config)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], (
        "a partial file was left"
    )
    api.load(config)
    target = TargetDb("sqlite", config.target.url)
    assert_target_equals_source(
        source, target, "orders", "order_lines", "order_notes", trimmed=True
    )
    target.dispose()
