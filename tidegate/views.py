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

from pydantic import BaseModel, ConfigDict

from tidegate.activity import Activity
from tidegate.api import Overview
from tidegate.entities.records import EntityStatus
from tidegate.load.inventory import Inventory, Problem
from tidegate.load.position import LoadPosition
from tidegate.model import RunRecord
from tidegate.scheduler import Scheduled
from tidegate.tables.chain import ChainStatus, ExportPoint


class View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
    published_at: str
    rows: int
    bytes: int
    lag_seconds: float


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


class OverviewView(View):
    source: str
    entities: list[EntityView]
    chain: ChainView
    load: LoadView
    runs: list[RunView]


class ActivityView(View):
    job: str
    state: str
    trigger: str | None
    started_at: str | None
    ended_at: str | None
    doing: str
    done: int
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


def pending_views(pending: dict[str, int]) -> list[PendingView]:
    return [PendingView(table=name, pending=count) for name, count in pending.items()]


def verify_view(inventory: Inventory, found: list[Problem]) -> VerifyView:
    def views(problems: Iterable[Problem]) -> list[ProblemView]:
        return [ProblemView(file=p.file, message=p.message) for p in problems]

    return VerifyView(
        table_exports=len(inventory.tables),
        entity_runs=len(inventory.runs),
        problems=views(p for p in found if p.serious),
        notes=views(p for p in found if not p.serious),  # things that are no export
    )


def _point_view(point: ExportPoint) -> ExportPointView:
    return ExportPointView(
        name=point.name,
        audit_key=point.audit_key,
        kind=point.kind,
        published_at=point.published_at.isoformat(),
        rows=point.rows,
        bytes=point.bytes,
        lag_seconds=round(point.lag_seconds, 3),
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
        recent=[_point_view(point) for point in chain.recent],
    )


def load_view(position: LoadPosition) -> LoadView:
    return LoadView(
        target=position.target,
        applied=position.applied,
        last_table_export=position.last_table_export,
        last_entity_run=position.last_entity_run,
        last_applied_at=position.last_applied_at,
        pending_table_exports=list(position.pending_table_exports),
        pending_entity_runs=list(position.pending_entity_runs),
        waiting=position.waiting,
        error=position.error,
    )


def overview_view(overview: Overview) -> OverviewView:
    return OverviewView(
        source=overview.source,
        entities=[entity_view(status) for status in overview.entities],
        chain=chain_view(overview.chain),
        load=load_view(overview.load),
        runs=[run_view(record) for record in overview.runs],
    )


def activity_view(activity: Activity) -> ActivityView:
    return ActivityView(
        job=activity.job,
        state=activity.state,
        trigger=activity.trigger,
        started_at=_time(activity.started_at),
        ended_at=_time(activity.ended_at),
        doing=activity.doing,
        done=activity.done,
        summary=activity.summary,
        error=activity.error,
    )


def scheduled_view(scheduled: Scheduled) -> ScheduledView:
    return ScheduledView(
        job=scheduled.job,
        every_seconds=scheduled.every.total_seconds(),
        next_at=_time(scheduled.next_at),
        skipped=scheduled.skipped,
    )
