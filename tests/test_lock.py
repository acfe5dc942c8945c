"""Job locks between real processes, and the run history they guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.test_cli import assert_one_error, run
from tidegate.api import open_source
from tidegate.errors import JobBusy
from tidegate.jobs import recorded_run
from tidegate.lock import job_lock

HOLDER = textwrap.dedent("""
    import sys, time, tidegate
    from tidegate.api import open_source
    from tidegate.lock import job_lock
    config = tidegate.load_config(sys.argv[1], [], environ={})
    with job_lock(open_source(config), sys.argv[2]):
        print("LOCKED", flush=True)
        time.sleep(float(sys.argv[3]))
""")


def hold_lock(source: Source, job: str, seconds: float) -> subprocess.Popen[str]:
    """Start a process that holds a job lock for `seconds`, once it has it."""
    source.config()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(source.tmp_path / "holder.toml"), job, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "LOCKED"
    return holder


@pytest.fixture
def initialized(source: Source) -> Source:
    table = sa.Table(
        "item", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)
    )
    source.create(table)
    tidegate.init(source.config())
    (source.tmp_path / "holder.toml").write_text(
        f'[source]\nurl = "{source.url}"\nschema = "{source.schema}"\n'
    )
    return source


def test_second_process_is_refused_then_gets_the_lock_when_the_holder_dies(
    initialized: Source,
) -> None:
    db = open_source(initialized.config())
    holder = hold_lock(initialized, "tables", 60)
    try:
        with pytest.raises(JobBusy) as busy, job_lock(db, "tables"):
            pass
        assert "job 'tables' is already running in another process" in str(busy.value)
        with job_lock(db, "ongoing"):  # other jobs are not blocked
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with job_lock(db, "tables", wait_seconds=10):  # the dead holder's lock is gone
        pass


def test_wait_queues_behind_the_holder(initialized: Source) -> None:
    db = open_source(initialized.config())
    holder = hold_lock(initialized, "claim", 1.5)
    started = time.monotonic()
    with job_lock(db, "claim", wait_seconds=30):
        waited = time.monotonic() - started
    holder.wait()
    assert 0.5 < waited < 30


def test_cli_refuses_a_busy_job_with_one_line(initialized: Source) -> None:
    holder = hold_lock(initialized, "init", 60)
    settings = ["--set", f"source.url={initialized.url}"]
    if initialized.schema:
        settings += ["--set", f"source.schema={initialized.schema}"]
    try:
        code, _out, err = run(initialized.tmp_path, *settings, "init")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert code == 1
    assert_one_error(err, r"Error: job 'init' is already running in another process.*")
    code, _out, err = run(initialized.tmp_path, *settings, "init", "--wait", "10")
    assert code == 0, err


def test_failed_run_is_recorded_with_its_error(initialized: Source) -> None:
    db = open_source(initialized.config())
    with pytest.raises(RuntimeError), recorded_run(db, "tables") as counters:
        counters.rows = 5
        raise RuntimeError("disk on fire")
    with recorded_run(db, "tables") as counters:
        counters.rows, counters.files, counters.bytes = 7, 1, 1234
    latest, failed = tidegate.list_runs(initialized.config(), job="tables")
    assert (failed.run_number, failed.status, failed.rows, failed.error) == (
        1,
        "failed",
        5,
        "disk on fire",
    )
    assert (latest.run_number, latest.status, latest.rows, latest.files, latest.bytes) == (
        2,
        "succeeded",
        7,
        1,
        1234,
    )
    assert latest.ended_at is not None and latest.ended_at >= latest.started_at
