"""The web application of `tidegate serve`: dashboard pages, the JSON API, the schedule.

:func:`create_app` builds it for a configuration; any ASGI server can run it, and
`tidegate.web.server.serve` runs it under uvicorn. Its lifespan runs the `[schedule]`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from tidegate.activity import AlreadyRunning, JobRunner
from tidegate.config import Config
from tidegate.errors import (
    ConfigError,
    EntityRefused,
    JobBusy,
    NotInitialized,
    SourceError,
    TidegateError,
)
from tidegate.scheduler import Scheduler, scheduled
from tidegate.version import __version__
from tidegate.web import metrics, routes_api
from tidegate.web.security import BodyLimit, Guard, redact

STATIC = Path(__file__).parent / "static"

# Refusals by error class: the first match decides (subclasses before their bases).
_STATUS: tuple[tuple[type[TidegateError], int], ...] = (
    (routes_api.WrongToken, 401),
    (routes_api.Unprocessable, 422),
    (ConfigError, 400),
    (EntityRefused, 409),
    (JobBusy, 409),
    (AlreadyRunning, 409),
    (NotInitialized, 409),
    (SourceError, 503),
)


def create_app(config: Config, *, run_schedule: bool = True) -> FastAPI:
    """The dashboard and API for a configuration.

    Args:
        config: the configuration every page, answer and run uses.
        run_schedule: run the `[schedule]` while the app is served.
    """
    runner = JobRunner(config)
    scheduler = Scheduler(runner, config.schedule)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_schedule and scheduler.intervals:
            async with scheduled(scheduler):
                yield
        else:
            yield

    response_class = _redacting(config.secrets())
    app = FastAPI(
        title="tidegate",
        version=__version__,
        description="The dashboard's JSON API. State changes are POSTs that carry the header "
        "`X-Tidegate-Request: 1`; with a `[serve] token`, every request carries "
        "`Authorization: Bearer <token>` or the session cookie of `POST /api/login`.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the interactive pages load scripts from a CDN; tidegate serves all
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=response_class,
    )
    app.state.config = config
    app.state.runner = runner
    app.state.scheduler = scheduler
    app.include_router(routes_api.router)
    _pages(app)
    _probes(app, config, runner)
    _error_handlers(app, response_class)
    app.add_middleware(Guard, token=config.serve.token)
    app.add_middleware(BodyLimit)  # added last, so it runs first: before the token's check
    return app


def _pages(app: FastAPI) -> None:
    """The dashboard: static pages whose script reads the API (nothing secret in them)."""

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/login", include_in_schema=False)
    def login_page() -> FileResponse:
        return FileResponse(STATIC / "login.html")

    @app.get("/favicon.svg", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _probes(app: FastAPI, config: Config, runner: JobRunner) -> None:
    """`/healthz`, `/readyz` and `/metrics` (web/metrics.py), behind the same guard as
    every page: without a token they answer on loopback only."""

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}  # the process is up and answers

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        ok, checks = metrics.ready(config)
        return JSONResponse(checks, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.scrape(config, runner), media_type=metrics.CONTENT_TYPE)


def error_code(error: TidegateError) -> str:
    """The refusal's kind for a program to test, from the error's class: `NotInitialized`
    gives `not_initialized` (the dashboard shows its empty state on it)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def _error_handlers(app: FastAPI, response_class: type[JSONResponse]) -> None:
    def refusal(
        status: int,
        error: str,
        hint: str = "",
        headers: Mapping[str, str] | None = None,
        code: str = "",
    ) -> JSONResponse:
        body = {"error": error, "hint": hint, "code": code}
        return response_class(body, status_code=status, headers=headers)

    @app.exception_handler(TidegateError)
    async def tidegate_error(_request: Request, error: TidegateError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(error, kind)), 400)
        return refusal(status, error.message, error.hint, code=error_code(error))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        # One line per problem, without the values sent (they might be a token).
        problems = [
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        ]
        return refusal(400, "; ".join(problems), "see /api/openapi.json for what to send")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        hint = "see /api/openapi.json for each route's method" if error.status_code == 405 else ""
        # A 405 keeps its `Allow` header: the methods the route takes.
        return refusal(error.status_code, str(error.detail), hint, error.headers)


def _redacting(secrets: Iterable[str]) -> type[JSONResponse]:
    """A JSON response class that never sends one of the secrets."""
    kept = tuple(secrets)

    class RedactedJSONResponse(JSONResponse):
        def render(self, content: Any) -> bytes:
            return redact(super().render(content).decode(), kept).encode()

    return RedactedJSONResponse
