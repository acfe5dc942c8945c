"""The JSON shapes of what tidegate reports, shared by the CLI's ``--json`` and the web API.

One model per thing reported, built from the library's results by one function each, so
that `tidegate runs --json` and ``GET /api/runs`` cannot drift apart: both are
``run_view(record).model_dump(mode="json")``. Times are ISO 8601 strings in UTC.

URLs are shown with their password hidden; the web API also removes every configured
password and token from what it sends (`tidegate.web.security`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from tidegate.activity import Activity
from tidegate.api import Overview
from tidegate.entities.records import EntityStatus
from tidegate.load.inventory import Inventory, Problem
from tidegate.load.position import LoadPosition
from tidegate.model import RunRecord
from tidegate.retention import TableSize
from tidegate.scheduler import Scheduled
from tidegate.tables.chain import ChainStatus


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


IsoTime = Annotated[str, BeforeValidator(_iso)]
"""A time, given as a datetime, shown as ISO 8601."""
Seconds = Annotated[float, AfterValidator(lambda value: round(value, 3))]
"""A duration in seconds, to the millisecond."""


class View(BaseModel):
    # from_attributes: a view whose fields match a result's is built straight from it.
    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True)


class EntityView(View):
    name: str
    tables: list[str]
    export_class: str
    eligible: bool
    problem: str
    enabled: bool
    initial_status: str
    initial_run: int | None
    ongoing: bool
    queue_depth: int


class RunView(View):
    job: str
    run: int
    status: str
    started_at: str
    ended_at: str | None
    duration_seconds: float | None
    rows: int
    files: int
    bytes: int
    error: str


class PendingView(View):
    table: str
    pending: int


class TableSizeView(View):
    table: str
    rows: int
    bytes: int | None


class StatusView(View):
    """`tidegate status`: pending changes per captured table, and the size of each of
    tidegate's own tables in the source."""

    pending: list[PendingView]
    footprint: list[TableSizeView]
    uncaptured: list[str]  # tables [tables] include selects that `init` has not captured


class ProblemView(View):
    file: str
    message: str


class VerifyView(View):
    table_exports: int
    entity_runs: int
    problems: list[ProblemView]
    notes: list[ProblemView]


class ExportPointView(View):
    name: str
    audit_key: int
    kind: str
    published_at: IsoTime
    rows: int
    bytes: int
    lag_seconds: Seconds


class ChainView(View):
    exports: int
    last_folder: str | None
    audit_key: int | None
    last_data_at: str | None
    planned: str | None
    pending_changes: int
    oldest_pending_at: str | None
    lag_seconds: float
    recent: list[ExportPointView]


class TableCountView(View):
    table: str
    rows: int
    deleted: int


class FolderTablesView(View):
    folder: str
    tables: list[TableCountView]


class FreshnessView(View):
    lag_seconds: Seconds
    exports_waiting: int
    state: str  # fresh | behind | failing
    problem: str


class LoadView(View):
    target: str
    applied: int
    last_table_export: str | None
    last_entity_run: str | None
    last_applied_at: str | None
    pending_table_exports: list[str]
    pending_entity_runs: list[str]
    waiting: str | None
    error: str
    recent: list[FolderTablesView]  # the newest complete table-export folders, newest first


class OverviewView(View):
    source: str
    freshness: FreshnessView
    entities: list[EntityView]
    chain: ChainView
    load: LoadView
    runs: list[RunView]


class ActivityView(View):
    job: str
    state: str
    trigger: str | None
    started_at: IsoTime | None
    ended_at: IsoTime | None
    doing: str
    done: int
    total: int  # 0 where the run's total is not known
    summary: str
    error: str


class ScheduledView(View):
    job: str
    every_seconds: float
    next_at: str | None
    skipped: int


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def entity_view(status: EntityStatus) -> EntityView:
    entity = status.entity
    return EntityView(
        name=entity.name,
        tables=list(entity.tables),
        export_class=entity.export_class,
        eligible=entity.eligible,
        problem=entity.refusal(),
        enabled=status.enabled,
        initial_status=status.initial_status,
        initial_run=status.initial_run,
        ongoing=status.ongoing,
        queue_depth=status.queue_depth,
    )


def run_view(record: RunRecord) -> RunView:
    return RunView(
        job=record.job,
        run=record.run_number,
        status=record.status,
        started_at=record.started_at.isoformat(),
        ended_at=_time(record.ended_at),
        duration_seconds=record.duration_seconds,
        rows=record.rows,
        files=record.files,
        bytes=record.bytes,
        error=record.error,
    )


def status_view(
    pending: dict[str, int], footprint: list[TableSize], uncaptured: list[str]
) -> StatusView:
    return StatusView(
        pending=[PendingView(table=name, pending=count) for name, count in pending.items()],
        footprint=[TableSizeView(table=t.table, rows=t.rows, bytes=t.bytes) for t in footprint],
        uncaptured=uncaptured,
    )


def verify_view(inventory: Inventory, found: list[Problem]) -> VerifyView:
    def views(problems: Iterable[Problem]) -> list[ProblemView]:
        return [ProblemView(file=p.file, message=p.message) for p in problems]

    return VerifyView(
        table_exports=len(inventory.tables),
        entity_runs=len(inventory.runs),
        problems=views(p for p in found if p.serious),
        notes=views(p for p in found if not p.serious),  # things that are no export
    )


def chain_view(chain: ChainStatus) -> ChainView:
    return ChainView(
        exports=chain.exports,
        last_folder=chain.last.name if chain.last else None,
        audit_key=chain.last.audit_key if chain.last else None,
        last_data_at=_time(chain.last_data_at),
        planned=chain.planned,
        pending_changes=chain.pending_changes,
        oldest_pending_at=_time(chain.oldest_pending_at),
        lag_seconds=round(chain.lag_seconds, 3),
        recent=[ExportPointView.model_validate(point) for point in chain.recent],
    )


def load_view(position: LoadPosition) -> LoadView:
    return LoadView.model_validate(position)


def overview_view(overview: Overview) -> OverviewView:
    return OverviewView(
        source=overview.source,
        freshness=FreshnessView.model_validate(overview.freshness),
        entities=[entity_view(status) for status in overview.entities],
        chain=chain_view(overview.chain),
        load=load_view(overview.load),
        runs=[run_view(record) for record in overview.runs],
    )


def activity_view(activity: Activity) -> ActivityView:
    return ActivityView.model_validate(activity)


def scheduled_view(scheduled: Scheduled) -> ScheduledView:
    return ScheduledView(
        job=scheduled.job,
        every_seconds=scheduled.every.total_seconds(),
        next_at=_time(scheduled.next_at),
        skipped=scheduled.skipped,
    )
