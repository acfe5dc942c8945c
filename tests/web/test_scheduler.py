"""The `[schedule]` of `tidegate serve`: writes reach export files with no command run."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

from tests.web.conftest import make_sample, start_service, stop_service
from tidegate import api
from tidegate.activity import JobRunner
from tidegate.config import ScheduleConfig
from tidegate.scheduler import Scheduler

WAIT_SECONDS = 60


def _records(folder: Path, pattern: str) -> list[dict[str, object]]:
    found = []
    for path in sorted(folder.glob(pattern)):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            found.extend(json.loads(line) for line in handle)
    return found


def test_a_write_reaches_an_ongoing_export_file_on_its_own(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "scheduled", '[schedule]\nongoing = "2s"\ntables = "2s"\n')
    config = sample.config()
    api.init(config)
    api.entities_enable(config, ["ACCOUNT"], ongoing=True)
    api.export_initial(config)
    service = start_service(sample.config_path)
    try:
        sample.write("UPDATE account_note SET body = 'changed by the app' WHERE note_no = 2;")
        deadline = time.monotonic() + WAIT_SECONDS
        changed: list[dict[str, object]] = []
        while not changed and time.monotonic() < deadline:
            time.sleep(0.5)
            changed = [
                r
                for r in _records(sample.exports / "entities", "INC_EXPORT_*.json.gz")
                if "changed by the app" in json.dumps(r)
            ]
        assert changed, "no INC_EXPORT file carries the change"
        assert changed[0]["OBJ"] == "ACCOUNT" and changed[0]["PK1"] == "1"
        with service.client() as client:
            jobs = {j["job"]: j for j in client.get("/api/jobs").json()["jobs"]}
            schedule = {s["job"]: s for s in client.get("/api/jobs").json()["schedule"]}
        assert jobs["ongoing"]["trigger"] == "schedule"
        assert schedule["ongoing"]["every_seconds"] == 2 and "load" not in schedule
        folders = sorted(p.name for p in sample.exports.glob("export_*"))
        assert folders, "the table-export schedule wrote no folder"
    finally:
        stopped = stop_service(service)
    assert stopped, "serve did not stop on SIGTERM"


def test_a_tick_while_the_job_runs_is_skipped(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "skip")
    api.init(sample.config())
    runner = JobRunner(sample.config())
    scheduler = Scheduler(runner, ScheduleConfig.model_validate({"tables": "1h"}))
    import sqlite3

    blocker = sqlite3.connect(sample.source, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the export waits for the source
    try:
        assert scheduler.tick("tables") is True
        assert scheduler.tick("tables") is False
        assert [job.skipped for job in scheduler.jobs()] == [1]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert runner.join("tables", 90).state == "succeeded"
