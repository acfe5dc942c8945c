"""The `[schedule]` of `tidegate serve`: start each job at its interval.

A small asyncio loop rather than a scheduler library: the schedule is three fixed
intervals, the loop must live on the web server's event loop, and the decisions that
matter (one run of a job at a time, in this process and across processes) belong to
:class:`~tidegate.activity.JobRunner` and the job locks, not to a scheduler. A library
would add its own threads, job stores and missed-run rules and take none of that away.

Each scheduled job gets its first run when the service starts and then one every
interval, counted from the previous start. A tick that finds the job still running (a
run longer than the interval, or one started from the dashboard) is skipped, not queued:
the run in progress will take the changes the skipped one would have.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tidegate.activity import AlreadyRunning, JobRunner, StartableJob
from tidegate.config import ScheduleConfig


@dataclass(frozen=True)
class Scheduled:
    """One job on the schedule."""

    job: StartableJob
    every: timedelta
    next_at: datetime | None  # None before the loop has started
    skipped: int  # ticks skipped because the job was still running


def schedule_of(config: ScheduleConfig) -> dict[StartableJob, timedelta]:
    """The jobs the schedule starts, with their intervals."""
    intervals: dict[StartableJob, timedelta | None] = {
        "tables": config.tables,
        "ongoing": config.ongoing,
        "load": config.load,
    }
    return {job: every for job, every in intervals.items() if every is not None}


class Scheduler:
    """Starts the scheduled jobs through a runner while :meth:`run` is awaited."""

    def __init__(self, runner: JobRunner, schedule: ScheduleConfig) -> None:
        self.runner = runner
        self.intervals = schedule_of(schedule)
        self._next: dict[StartableJob, datetime] = {}
        self._skipped = dict.fromkeys(self.intervals, 0)

    def jobs(self) -> list[Scheduled]:
        """The scheduled jobs, with when each starts next."""
        return [
            Scheduled(job, every, self._next.get(job), self._skipped[job])
            for job, every in self.intervals.items()
        ]

    async def run(self) -> None:
        """Run the schedule until cancelled."""
        async with asyncio.TaskGroup() as group:
            for job, every in self.intervals.items():
                group.create_task(self._every(job, every))

    async def _every(self, job: StartableJob, every: timedelta) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            self._next[job] = datetime.now(UTC) + timedelta(seconds=next_tick - loop.time())
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            # Counted from the previous start; after a stall, from now (no burst of ticks).
            next_tick = max(next_tick + every.total_seconds(), loop.time())
            self.tick(job)

    def tick(self, job: StartableJob) -> bool:
        """Start the job unless it is running; whether it was started."""
        try:
            self.runner.start(job, "schedule")
        except AlreadyRunning:
            self._skipped[job] += 1
            return False
        return True


@contextlib.asynccontextmanager
async def scheduled(scheduler: Scheduler) -> AsyncIterator[Scheduler]:
    """Run the schedule in the background for the duration of a block."""
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
