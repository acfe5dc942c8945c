"""Runs started inside a long-running process (`tidegate serve`), with live progress.

A :class:`JobRunner` starts a job's library call in a thread of its own and keeps, per
job, what its latest run is doing: its state, what it is working on, how far it got, and
how it ended. The dashboard's buttons and the scheduler both start runs through it.

At most one run of a job runs in this process at a time (a second start is refused with a
message). Across processes the job locks in the source decide, exactly as for the CLI: a
run whose job another process (a cron job, say) is running ends `refused`, and nothing is
exported twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from tidegate import api
from tidegate.config import Config
from tidegate.errors import JobBusy, NoExports, TidegateError
from tidegate.load.loader import LoadStep

log = logging.getLogger(__name__)

StartableJob = Literal["tables", "initial", "ongoing", "load"]
STARTABLE_JOBS: tuple[StartableJob, ...] = ("tables", "initial", "ongoing", "load")

RunState = Literal["idle", "running", "succeeded", "failed", "refused"]
"""`refused`: another process was running the same job, so this run did nothing."""

Trigger = Literal["dashboard", "schedule", "api"]


@dataclass(frozen=True)
class Activity:
    """What the latest in-process run of a job did or is doing."""

    job: StartableJob
    state: RunState = "idle"
    trigger: Trigger | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    doing: str = ""  # what it works on now ("exporting customer")
    done: int = 0  # rows, entities or records so far
    total: int = 0  # of all the run will do, where known (loads, initial exports); else 0
    summary: str = ""  # how it ended, in one line
    error: str = ""


class AlreadyRunning(TidegateError):
    """The job is running in this process already."""


class JobRunner:
    """Starts runs in threads and keeps their :class:`Activity`.

    Args:
        config: the configuration every run uses.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._activity = {job: Activity(job) for job in STARTABLE_JOBS}
        self._threads: dict[StartableJob, threading.Thread] = {}
        self._outcomes: dict[tuple[str, str], int] = {}

    def activities(self) -> list[Activity]:
        """Every startable job's latest activity, in a fixed order."""
        with self._lock:
            return [self._activity[job] for job in STARTABLE_JOBS]

    def activity(self, job: StartableJob) -> Activity:
        with self._lock:
            return self._activity[job]

    def running(self, job: StartableJob) -> bool:
        return self.activity(job).state == "running"

    def start(self, job: StartableJob, trigger: Trigger, names: Sequence[str] = ()) -> Activity:
        """Start a run of ``job`` in a new thread and return its first activity.

        Args:
            job: which job.
            trigger: who asked, for the dashboard.
            names: for `initial`, the entities to export (default: every enabled entity
                whose initial export has not completed).

        Raises:
            AlreadyRunning: a run of the job is in progress in this process.
        """
        with self._lock:
            current = self._activity[job]
            if current.state == "running":
                raise AlreadyRunning(
                    f"job {job!r} is already running (started {_clock(current.started_at)} "
                    f"by the {current.trigger}); not started",
                    "wait for it to finish",
                )
            started = Activity(job, "running", trigger, datetime.now(UTC), doing="starting")
            self._activity[job] = started
            thread = threading.Thread(
                target=self._run, args=(job, list(names)), name=f"tidegate-{job}", daemon=True
            )
            self._threads[job] = thread
        thread.start()
        return started

    def join(self, job: StartableJob, timeout: float | None = None) -> Activity:
        """Wait for the job's current run (if any) to end; its activity then."""
        with self._lock:
            thread = self._threads.get(job)
        if thread is not None:
            thread.join(timeout)
        return self.activity(job)

    def _update(self, job: StartableJob, **changes: object) -> Activity:
        with self._lock:
            updated = replace(self._activity[job], **changes)  # type: ignore[arg-type]
            self._activity[job] = updated
            return updated

    def _progress(self, job: StartableJob, doing: str, advance: int) -> None:
        with self._lock:
            current = self._activity[job]
            self._activity[job] = replace(current, doing=doing, done=current.done + advance)

    def _set_total(self, job: StartableJob, total: int) -> None:
        self._update(job, total=total)

    def _load_progress(self, step: LoadStep) -> None:
        self._update("load", doing=step.doing, done=step.done, total=step.total)

    def _run(self, job: StartableJob, names: list[str]) -> None:
        fields: dict[str, str] = {"job": job}
        try:
            summary = self._call(job, names)
        except JobBusy as busy:
            log.warning("%s: refused: %s", job, busy.message, extra=fields)
            self._finish(job, "refused", error=busy.message)
        except TidegateError as error:
            log.error("%s failed: %s", job, _with_hint(error), extra=fields)
            self._finish(job, "failed", error=_with_hint(error))
        except Exception as error:  # a thread has no caller to raise to: keep it visible
            text = " ".join(str(error).split()) or type(error).__name__
            log.error("%s failed", job, exc_info=True, extra=fields)
            self._finish(job, "failed", error=f"unexpected {type(error).__name__}: {text}")
        else:
            log.info("%s: %s", job, summary, extra=fields)
            self._finish(job, "succeeded", summary=summary)

    def outcomes(self) -> dict[tuple[str, str], int]:
        """How many runs this runner finished, by (job, outcome)."""
        with self._lock:
            return dict(self._outcomes)

    def _finish(self, job: StartableJob, state: RunState, **changes: str) -> Activity:
        with self._lock:
            self._outcomes[(job, state)] = self._outcomes.get((job, state), 0) + 1
        return self._update(job, state=state, ended_at=datetime.now(UTC), doing="", **changes)

    def _call(self, job: StartableJob, names: list[str]) -> str:
        """Run the job's library call; one line saying what it did."""
        config = self.config
        if job == "tables":
            results = api.export_tables(
                config,
                progress=lambda table, rows: self._progress(job, f"exporting {table}", rows),
            )
            if not results:
                return "nothing to export: no changes are pending"
            return "; ".join(
                f"{r.name}: {r.rows} row(s), {len(r.tables)} table(s)" for r in results
            )
        if job == "initial":
            initial = api.export_initial(
                config,
                names,
                progress=lambda entity, n: self._progress(job, f"exporting {entity}", n),
                total=lambda count: self._set_total(job, count),
            )
            if initial is None:
                return "nothing to export: no enabled entity is waiting for its initial export"
            return (
                f"initial run {initial.run}: {', '.join(initial.entities)}: "
                f"{initial.records} record(s) in {len(initial.files)} file(s)"
            )
        if job == "ongoing":
            ongoing = api.export_ongoing(
                config,
                progress=lambda entity, n: self._progress(job, f"exporting {entity}", n),
            )
            return "; ".join(
                f"ongoing run {r.run}: {r.records} record(s) in {len(r.files)} file(s)"
                if r.manifest
                else f"ongoing run {r.run}: nothing queued"
                for r in ongoing
            )
        try:
            loaded = api.load(config, progress=self._load_progress)
        except NoExports:  # a schedule's load before the first export: not a failure
            return "nothing to load: no export yet"
        if not loaded.tables and not loaded.runs:
            return "nothing to load: every complete export is applied"
        return (
            f"loaded {len(loaded.tables)} table export(s) ({loaded.rows} row(s)) and "
            f"{len(loaded.runs)} entity run(s) ({loaded.records} record(s))"
        )


def _with_hint(error: TidegateError) -> str:
    return f"{error.message} (hint: {error.hint})" if error.hint else error.message


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S UTC") if moment else "just now"
