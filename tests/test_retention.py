"""`[capture] keep`: export runs remove exported changes, claims, export records and run
records older than the kept window, in small batches, while writers go on; a re-export
since before the window is refused naming the oldest date it can reach; `status` shows
each tidegate table's rows and bytes."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from datetime import UTC

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.load.conftest import TargetDb
from tests.load.helpers import assert_target_equals_source
from tests.load.test_roundtrip import change
from tests.tables.helpers import sample_tables
from tests.test_cli import assert_one_error, run
from tidegate import retention

KEEP = "2s"


def footprint(source: Source) -> dict[str, int]:
    code, out, err = run(source.tmp_path, *source.cli_options(), "status", "--json")
    assert code == 0, err
    return {size["table"]: size["rows"] for size in json.loads(out)["footprint"]}


def cli(source: Source, *command: str, keep: str = KEEP) -> str:
    code, out, err = run(source.tmp_path, *source.cli_options(f"capture.keep={keep}"), *command)
    assert code == 0, f"{command}: {out}{err}"
    return out


def test_exported_changes_and_old_runs_are_removed_and_reexport_is_bounded(
    source: Source,
) -> None:
    source.create(*sample_tables())
    cli(source, "init")
    rng = random.Random(11)
    for _ in range(3):  # kept an hour: nothing is removed yet, however slow the machine
        change(source, rng, 40)
        cli(source, "export", "tables", keep="1h")
    before = footprint(source)
    assert before["tidegate_change"] > 0 and before["tidegate_run"] >= 4
    time.sleep(2.5)  # everything so far is now older than the kept window
    started = dt.datetime.now(UTC)
    change(source, rng, 30)
    cli(source, "export", "tables")
    after = footprint(source)
    # Only the changes of the last export are left (claimed after the window began), one
    # run per job, and the last two export records: the one the chain goes on from is kept.
    with source.engine().connect() as conn:
        schema = f'"{source.schema}".' if source.schema else ""
        oldest_kept = conn.exec_driver_sql(
            f"SELECT min(captured_us) FROM {schema}tidegate_change"
        ).scalar()
    assert oldest_kept is not None and oldest_kept >= int(started.timestamp() * 1e6) - 10**6
    assert 0 < after["tidegate_change"] <= 30
    assert after["tidegate_run"] == 2  # the last init and the last tables run
    assert after["tidegate_export"] == 1
    assert after["tidegate_tick"] <= 1

    # A re-export since before the window is refused in one line naming where it can reach.
    code, _out, err = run(
        source.tmp_path,
        *source.cli_options(f"capture.keep={KEEP}"),
        "export",
        "tables",
        "--reexport-since",
        (started - dt.timedelta(hours=1)).isoformat(),
    )
    assert code == 1
    assert_one_error(
        err, r"Error: --reexport-since .*: changes before .* are no longer kept .*reach is .*"
    )
    # Since a date in the window it works, and the whole stream still rebuilds the source.
    cli(source, "export", "tables", "--reexport-since", dt.datetime.now(UTC).isoformat())
    cli(source, "load")
    target = TargetDb("sqlite", f"sqlite:///{source.tmp_path / 'target.db'}")
    assert_target_equals_source(source, target, "parent", "child line")
    target.dispose()


def test_a_purge_never_stalls_a_writer(source: Source, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer commits a change every few milliseconds while an export purges thousands of
    changes in batches: no write fails, and none waits long."""
    monkeypatch.setattr(retention, "BATCH", 200)
    source.create(*sample_tables())
    config = source.config("capture.keep=1s")
    tidegate.init(config)
    parent = sample_tables()[0]
    with source.engine().begin() as conn:
        conn.execute(parent.insert(), [{"id": i, "label": "x"} for i in range(1, 5001)])
    tidegate.export_tables(config)
    with source.engine().begin() as conn:  # 5,000 changes to claim, export, then purge
        conn.execute(parent.update().values(label="y"))
    tidegate.export_tables(config)
    time.sleep(1.2)
    stop = threading.Event()
    waits: list[float] = []
    errors: list[BaseException] = []

    def write() -> None:
        engine = source.engine()
        key = 100_000
        try:
            while not stop.is_set():
                began = time.monotonic()
                with engine.begin() as conn:
                    conn.execute(parent.insert(), [{"id": key, "label": "w"}])
                waits.append(time.monotonic() - began)
                key += 1
                time.sleep(0.002)
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.2)
        tidegate.export_tables(config)
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    assert waits and max(waits) < 5.0, max(waits)
    with source.engine().connect() as conn:
        table = sa.Table(
            "tidegate_change", sa.MetaData(), schema=source.schema or None, autoload_with=conn
        )
        left = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
    assert left is not None and left < 5000
