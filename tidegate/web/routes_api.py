"""The JSON API under ``/api/``: thin over the library, in the shapes of `tidegate.views`.

Every answer that has a CLI twin is the same JSON as that command's ``--json`` (the route's
docstring names it). Reads are GETs; everything that changes state is a POST (and passes
the cross-site checks of `tidegate.web.security`). A refusal is ``{"error", "hint",
"code"}`` with a 4xx or 5xx status: 400 bad input, 401 no token, 403 cross-site, 409 busy
or not possible now, 503 the source is unreachable.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tidegate import api
from tidegate.activity import STARTABLE_JOBS, JobRunner, StartableJob
from tidegate.config import Config
from tidegate.errors import ConfigError
from tidegate.model import JobName
from tidegate.scheduler import Scheduler
from tidegate.views import (
    ActivityView,
    ChainView,
    EntityView,
    LoadView,
    OverviewView,
    RunView,
    ScheduledView,
    StatusView,
    VerifyView,
    activity_view,
    chain_view,
    entity_view,
    load_view,
    overview_view,
    run_view,
    scheduled_view,
    status_view,
    verify_view,
)
from tidegate.web.security import COOKIE, session_value, token_matches

router = APIRouter(prefix="/api")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnableRequest(Body):
    names: list[str] = Field(default_factory=list, description="Entity names.")
    all: bool = Field(False, description="Every eligible entity (instead of names).")
    ongoing: bool = Field(False, description="Also capture their changes for ongoing export.")


class DisableRequest(Body):
    names: list[str] = Field(min_length=1)
    ongoing_only: bool = Field(False, description="Only stop ongoing capture.")


class NamesRequest(Body):
    names: list[str] = Field(min_length=1)


class StartRequest(Body):
    names: list[str] = Field(
        default_factory=list,
        description="For `initial`: the entities (default: every "
        "enabled entity whose initial export has not completed).",
    )


class LoginRequest(Body):
    token: str


class Names(BaseModel):
    names: list[str]


class JobsView(BaseModel):
    jobs: list[ActivityView]
    schedule: list[ScheduledView]


class ErrorView(BaseModel):
    error: str
    hint: str
    code: str = ""  # the kind of refusal, for a program: `not_initialized`, `job_busy`, …


def _config(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


def _runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.runner
    return runner


def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


ConfigDep = Annotated[Config, Depends(_config)]
RunnerDep = Annotated[JobRunner, Depends(_runner)]
REFUSALS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorView} for code in (400, 401, 403, 409, 503)
}


@router.get("/overview", responses=REFUSALS)
def overview(config: ConfigDep) -> OverviewView:
    """Everything the dashboard shows (`tidegate overview --json`)."""
    return overview_view(api.overview(config))


@router.get("/entities", responses=REFUSALS)
def entities(config: ConfigDep) -> list[EntityView]:
    """Every entity (`tidegate entities list --json`)."""
    return [entity_view(status) for status in api.entities_list(config)]


@router.post("/entities/enable", responses=REFUSALS)
def enable(body: EnableRequest, config: ConfigDep) -> Names:
    """Enable entities, with `ongoing` their capture (`tidegate entities enable`)."""
    if bool(body.names) == body.all:
        raise Unprocessable("name entities, or set all (not both)", 'send {"names": [...]}')
    names = api.entities_enable(
        config, _named(body.names), all_eligible=body.all, ongoing=body.ongoing
    )
    return Names(names=names)


@router.post("/entities/disable", responses=REFUSALS)
def disable(body: DisableRequest, config: ConfigDep) -> Names:
    """Disable entities, or only their ongoing capture (`tidegate entities disable`)."""
    names = _named(body.names)
    return Names(names=api.entities_disable(config, names, ongoing_only=body.ongoing_only))


@router.post("/entities/reset", responses=REFUSALS)
def reset(body: NamesRequest, config: ConfigDep) -> Names:
    """Mark initial exports as not started (`tidegate entities reset`)."""
    return Names(names=api.entities_reset(config, _named(body.names)))


@router.get("/chain", responses=REFUSALS)
def chain(config: ConfigDep) -> ChainView:
    """The table-export chain: last folder, high-water mark, pending changes, lag."""
    return chain_view(api.chain_status(config))


@router.get("/position", responses=REFUSALS)
def position(config: ConfigDep) -> LoadView:
    """What the target has applied, and the complete exports it has not."""
    return load_view(api.load_position(config))


@router.get("/status", responses=REFUSALS)
def status(config: ConfigDep) -> StatusView:
    """Committed changes not yet claimed, per captured table, and the rows and bytes of
    tidegate's own tables in the source (`tidegate status --json`)."""
    return status_view(
        api.pending_changes(config), api.footprint(config), api.uncaptured_tables(config)
    )


@router.get("/runs", responses=REFUSALS)
def runs(
    config: ConfigDep,
    job: Annotated[JobName | None, Query(description="Only runs of this job.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> list[RunView]:
    """Run history, newest first (`tidegate runs --json`)."""
    return [run_view(record) for record in api.list_runs(config, job=job, limit=limit)]


@router.get("/verify", responses=REFUSALS)
def verify(config: ConfigDep) -> VerifyView:
    """Every export at the output location checked, without loading (`tidegate verify
    --json`); problems are listed, not raised."""
    return verify_view(*api.verify(config))


@router.get("/jobs")
def jobs(request: Request, runner: RunnerDep) -> JobsView:
    """The latest run of each job started by this service, with live progress, and the
    schedule."""
    return JobsView(
        jobs=[activity_view(activity) for activity in runner.activities()],
        schedule=[scheduled_view(job) for job in _scheduler(request).jobs()],
    )


@router.post("/jobs/{job}/start", status_code=202, responses=REFUSALS)
def start(
    job: Literal["tables", "initial", "ongoing", "load"],
    runner: RunnerDep,
    body: StartRequest | None = None,
) -> ActivityView:
    """Start a run of a job in the background; follow it in ``GET /api/jobs``. Refused
    (409) while a run of the same job started here is in progress."""
    chosen: StartableJob = next(name for name in STARTABLE_JOBS if name == job)
    return activity_view(runner.start(chosen, "dashboard", body.names if body else ()))


@router.post("/login", status_code=204, responses=REFUSALS)
def login(body: LoginRequest, request: Request, response: Response) -> None:
    """Check the token and set the session cookie that stands for it."""
    token = _config(request).serve.token
    if not token:
        raise ConfigError("this service has no token to log in with", "open the dashboard")
    if not token_matches(body.token, token):
        raise WrongToken("the token is wrong", "use the [serve] token of the service")
    response.set_cookie(COOKIE, session_value(token), httponly=True, samesite="strict", path="/")


@router.post("/logout", status_code=204)
def logout(response: Response) -> None:
    """Forget the session cookie."""
    response.delete_cookie(COOKIE, path="/")


class Unprocessable(ConfigError):
    """A body of the right shape whose values cannot be acted on (HTTP 422)."""


def _named(names: list[str]) -> list[str]:
    if any(not name.strip() for name in names):
        raise Unprocessable("names: an entity name is empty", "send the entities' names")
    return names


class WrongToken(ConfigError):
    """A login with a token that is not the service's."""
