"""The `tidegate` command: parse options, make one library call, render the result.

No SQL, file formats or business rules live here. Every command loads the configuration
the same way (``--config``, ``TIDEGATE_CONFIG``, ``./tidegate.toml``, then ``--set``
overrides) and reports any TidegateError as ``Error: …`` / ``Hint: …`` on stderr with exit
status 1. Any other exception is reported in one line too; ``--debug`` shows its traceback.
"""

from __future__ import annotations

import functools
import gc
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tidegate import api, logs, views
from tidegate.config import Config, load_config
from tidegate.demo import run_demo
from tidegate.errors import TidegateError
from tidegate.load.loader import LoadStep
from tidegate.model import JobName
from tidegate.version import __version__

app = typer.Typer(
    name="tidegate",
    help="Export a relational database's changes to files, provably complete, and load them "
    "into a warehouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Not on a terminal (a pipe, a file, a CI log), tables keep every cell whole: no width to
# fit them to.
out = Console(width=None if sys.stdout.isatty() else 10_000)
err = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@dataclass
class Options:
    """Global options, shared by every command."""

    config_path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    debug: bool = False

    def config(self) -> Config:
        return load_config(self.config_path, self.overrides)


_options = Options()


def _version(value: bool) -> None:
    if value:
        out.print(f"tidegate {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default: $TIDEGATE_CONFIG, then ./tidegate.toml).",
            show_default=False,
            metavar="PATH",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a config key, e.g. --set source.url=sqlite:///x.db (repeatable).",
            show_default=False,
            metavar="SECTION.KEY=VALUE",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            help="Log what tidegate does at this level and above, on stderr (default: info "
            "for serve, error for other commands, which print their own results).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        LogFormat,
        typer.Option("--log-format", help="Log lines as text, or as JSON objects."),
    ] = LogFormat.text,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    """Global options."""
    _options.config_path = config
    _options.overrides = list(set_ or [])
    _options.debug = debug
    default = LogLevel.info if ctx.invoked_subcommand == "serve" else LogLevel.error
    logs.configure((log_level or default).value, "json" if log_format == LogFormat.json else "text")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every error of a command into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TidegateError as error:
            if _options.debug:
                raise
            err.print(f"Error: {error.message}", markup=False)
            if error.hint:
                err.print(f"Hint: {error.hint}", markup=False)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            err.print("Error: interrupted", markup=False)
            raise typer.Exit(130) from None
        except Exception as error:
            if _options.debug:
                raise
            text = " ".join(str(error).split()) or type(error).__name__
            err.print(f"Error: unexpected {type(error).__name__}: {text}", markup=False)
            err.print(
                "Hint: rerun with --debug for the traceback, and please report it", markup=False
            )
            raise typer.Exit(1) from None

    return wrapper


def print_json(data: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
@reports_errors
def init(
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for a running init.", metavar="SECONDS")
    ] = 0,
) -> None:
    """Create tidegate's control tables and change capture in the source (safe to rerun)."""
    report = api.init(_options.config(), wait_seconds=wait)
    for name in report.installed:
        out.print(f"capture installed on {name}", markup=False, highlight=False)
    for name in report.refreshed:
        out.print(f"capture refreshed on {name}", markup=False, highlight=False)
    for name in report.removed:
        out.print(
            f"capture removed from {name} (no longer included)", markup=False, highlight=False
        )
    for name in report.keyless:
        out.print(
            f"keyless: {name} has no primary key, so each export that follows a change to it "
            "holds all of it; name its key columns in [tables] keys (their values must be "
            "unique) to export only its changes",
            markup=False,
            highlight=False,
        )
    total = len(report.installed) + len(report.refreshed)
    out.print(f"init done: {total} table(s) captured", highlight=False)


@app.command()
@reports_errors
def uninstall(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every trigger, function and table tidegate created in the source."""
    config = _options.config()
    if not yes and not sys.stdin.isatty():
        raise TidegateError(
            "uninstall asks for confirmation, and standard input is not a terminal",
            "pass --yes (-y) to confirm that tidegate's triggers and control tables go",
        )
    if not yes:
        typer.confirm(
            "Remove tidegate's triggers and control tables (with unexported changes and run "
            "history) from the source?",
            abort=True,
        )
    removed = api.uninstall(config)
    out.print(
        f"uninstalled: capture removed from {len(removed)} table(s), control tables dropped",
        highlight=False,
    )


@app.command()
@reports_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Captured tables and their committed changes not yet claimed, and the size of each of
    tidegate's own tables in the source."""
    config = _options.config()
    view = views.status_view(
        api.pending_changes(config), api.footprint(config), api.uncaptured_tables(config)
    )
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    _warn_uncaptured(view.uncaptured)
    table = Table("table", "pending changes")
    for pending in view.pending:
        table.add_row(pending.table, str(pending.pending))
    out.print(table)
    sizes = Table("tidegate table", "rows", "bytes")
    for size in view.footprint:
        sizes.add_row(size.table, f"{size.rows:,}", "" if size.bytes is None else f"{size.bytes:,}")
    out.print(sizes)


RecordsPerFile = Annotated[
    int | None,
    typer.Option(
        help="Records per file; 0: one file per thread ([entities] records_per_file).",
        metavar="N",
        min=0,
    ),
]

export_app = typer.Typer(help="Run an export.", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _parse_date(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise TidegateError(
            f"{option}: {text!r} is not a date",
            "use ISO 8601, such as 2026-11-01 or 2026-11-01T06:00:00+00:00 (without a zone, "
            "[source] timezone applies)",
        ) from None


@export_app.command("tables")
@reports_errors
def export_tables(
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Repeat runs until nothing is pending.")
    ] = False,
    restart_from_beginning: Annotated[
        bool,
        typer.Option("--restart-from-beginning", help="Start a new stream with a snapshot."),
    ] = False,
    restart_from: Annotated[
        str | None,
        typer.Option(
            "--restart-from",
            metavar="DATE",
            help="Start a new stream of every row with data time at or after DATE.",
        ),
    ] = None,
    reexport_since: Annotated[
        str | None,
        typer.Option(
            "--reexport-since", metavar="DATE", help="Export again every row changed since DATE."
        ),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for a running table export.", metavar="SECONDS")
    ] = 0,
    location_moved: Annotated[
        bool,
        typer.Option(
            "--location-moved",
            help="The export folders were moved to [output] location: follow them there.",
        ),
    ] = False,
) -> None:
    """One table-export run (at most one folder), or runs until caught up."""
    config = _options.config()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]}"),  # none said until the first rows are written
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("reading the pending changes", rows="", total=None)

        def progress(table: str, rows: int) -> None:
            bar.update(task, description=f"exporting {table}", advance=rows)
            done, total = int(bar.tasks[0].completed), bar.tasks[0].total
            if total and done > total:  # an estimate short of the rows
                total = done
                bar.update(task, total=total)
            about = f" of about {int(total):,}" if total else ""
            bar.update(task, rows=f"{done:,}{about} rows")

        def planned(rows: int) -> None:  # per folder: the runs before it are done
            if rows:
                bar.update(task, total=bar.tasks[0].completed + rows)

        results = api.export_tables(
            config,
            restart_from_beginning=restart_from_beginning,
            restart_from=_parse_date("--restart-from", restart_from),
            reexport_since=_parse_date("--reexport-since", reexport_since),
            until_caught_up=until_caught_up,
            wait_seconds=wait,
            progress=progress,
            location_moved=location_moved,
            planned=planned if err.is_terminal else None,  # no bar, no estimates to take
        )
    if not results:
        out.print("nothing to export: no changes are pending", highlight=False)
    for result in results:
        what = "redone" if result.redone else (result.restart or result.kind)
        out.print(
            f"{result.name}: {what}, {len(result.tables)} table(s), {result.rows} row(s), "
            f"{result.bytes} bytes",
            highlight=False,
        )
    _warn_uncaptured(api.uncaptured_tables(config))


def _warn_uncaptured(tables: list[str]) -> None:
    """One line on stderr naming the tables [tables] include selects but `init` has not
    captured (created since): their changes are not exported."""
    if tables:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        err.print(
            f"Warning: not captured, so not exported: {shown} (matched by [tables] include); "
            "run `tidegate init` to capture them",
            highlight=False,
            markup=False,
        )


@export_app.command("initial")
@reports_errors
def export_initial(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Entity names (default: every "
            "enabled entity whose initial export has not completed).",
            metavar="[NAME...]",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="Workers per entity ([entities] threads).", metavar="N", min=1, max=64),
    ] = None,
    records_per_file: RecordsPerFile = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="Put into the file names ([entities] file_prefix).", metavar="P"),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for a running initial export.", metavar="SECONDS")
    ] = 0,
) -> None:
    """Initial export of entities, whole, as gzip JSON Lines files."""
    config = _options.config()
    if prefix is not None:
        _options.overrides.append(f"entities.file_prefix={prefix}")
        config = _options.config()  # validates the prefix like the config key
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("entities"),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("counting entities", total=None)
        result = api.export_initial(
            config,
            names or [],
            threads=threads,
            records_per_file=records_per_file,
            wait_seconds=wait,
            progress=lambda entity, n: bar.update(
                task, description=f"exporting {entity}", advance=n
            ),
            total=lambda count: bar.update(task, description="exporting", total=count),
        )
    if result is None:
        out.print(
            "nothing to export: no enabled entity is waiting for its initial export",
            highlight=False,
        )
        return
    if result.raised_from is not None:
        out.print(
            f"records per file raised from {result.raised_from} to "
            f"{result.records_per_file} to keep the run under 500 files",
            highlight=False,
        )
    out.print(
        f"initial run {result.run}: {', '.join(result.entities)}: {result.records} "
        f"record(s) in {len(result.files)} file(s); manifest {result.manifest}",
        highlight=False,
    )


@export_app.command("ongoing")
@reports_errors
def export_ongoing(
    threads: Annotated[
        int | None, typer.Option(help="Workers ([entities] threads).", metavar="N", min=1, max=64)
    ] = None,
    records_per_file: RecordsPerFile = None,
    thread_limit: Annotated[
        int | None,
        typer.Option(
            help="Most records a thread exports in a run ([entities] thread_limit; raised to "
            "clear at least 20% of the queue and 100,000 records).",
            metavar="N",
            min=0,
        ),
    ] = None,
    auto_backlog: Annotated[
        bool | None,
        typer.Option(
            "--auto-backlog/--no-auto-backlog",
            help="Start the next run at once while a backlog remains ([entities] auto_backlog).",
        ),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for a running ongoing export.", metavar="SECONDS")
    ] = 0,
) -> None:
    """One ongoing export run: a current snapshot of every queued entity."""
    results = api.export_ongoing(
        _options.config(),
        threads=threads,
        records_per_file=records_per_file,
        thread_limit=thread_limit,
        auto_backlog=auto_backlog,
        wait_seconds=wait,
    )
    for result in results:
        for name in result.reshaped:
            out.print(
                f"entity {name}: its tables changed shape; every one of its entities is "
                "queued, to be exported again whole",
                markup=False,
                highlight=False,
            )
        if result.limit_raised_from is not None:
            out.print(
                f"thread limit raised: {result.limit_raised_from} records allowed, "
                f"{result.limit} needed to clear 20% of the queue (or 100,000)",
                highlight=False,
            )
        if result.raised_from is not None:
            out.print(
                f"records per file raised from {result.raised_from} to "
                f"{result.records_per_file} to keep the run under 500 files",
                highlight=False,
            )
        if not result.manifest:
            out.print(f"ongoing run {result.run}: nothing queued, nothing written", highlight=False)
            continue
        out.print(
            f"ongoing run {result.run}: {result.records} record(s) in "
            f"{len(result.files)} file(s); {result.backlog} entities still queued",
            highlight=False,
        )


entities_app = typer.Typer(help="List, enable and disable entities.", no_args_is_help=True)
app.add_typer(entities_app, name="entities")


@entities_app.command("list")
@reports_errors
def entities_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every entity: name, tables, export class, eligibility, initial status, ongoing flag,
    queue depth; then each table in no entity, and why."""
    config = _options.config()
    listed = [
        views.entity_view(status).model_dump(mode="json") for status in api.entities_list(config)
    ]
    if as_json:
        print_json(listed)
        return
    table = Table("entity", "tables", "class", "eligible", "enabled", "initial", "ongoing", "queue")
    for e in listed:
        initial = e["initial_status"] + (f" (run {e['initial_run']})" if e["initial_run"] else "")
        table.add_row(
            e["name"],
            ", ".join(e["tables"]),
            e["export_class"],
            "yes" if e["eligible"] else "no",
            "yes" if e["enabled"] else "no",
            initial,
            "on" if e["ongoing"] else "off",
            str(e["queue_depth"]),
        )
    out.print(table)
    outside = api.entities_left_out(config)
    if outside:
        out.print("Tables in no entity:", highlight=False)
        for name, why in sorted(outside.items()):
            out.print(f"  {name}: {why}", highlight=False, markup=False)


@entities_app.command("enable")
@reports_errors
def entities_enable(
    names: Annotated[
        list[str] | None, typer.Argument(help="Entity names.", metavar="NAME...")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every eligible entity.")] = False,
    ongoing: Annotated[
        bool, typer.Option("--ongoing", help="Also capture their changes for ongoing export.")
    ] = False,
) -> None:
    """Enable entities for export, and with --ongoing their change capture."""
    if bool(names) == all_:
        raise TidegateError(
            "entities enable: name entities, or pass --all (not both)",
            "tidegate entities enable ACCOUNT PERSON, or --all",
        )
    enabled = api.entities_enable(
        _options.config(), names or [], all_eligible=all_, ongoing=ongoing
    )
    what = "enabled with ongoing capture" if ongoing else "enabled"
    out.print(f"{what}: {', '.join(enabled) or 'none'}", highlight=False)


@entities_app.command("disable")
@reports_errors
def entities_disable(
    names: Annotated[list[str], typer.Argument(help="Entity names.", metavar="NAME...")],
    ongoing_only: Annotated[
        bool,
        typer.Option("--ongoing-only", help="Only stop ongoing capture; keep the entity enabled."),
    ] = False,
) -> None:
    """Disable entities, or only their ongoing capture (which removes it)."""
    disabled = api.entities_disable(_options.config(), names, ongoing_only=ongoing_only)
    what = "ongoing capture removed" if ongoing_only else "disabled"
    out.print(f"{what}: {', '.join(disabled)}", highlight=False)


@entities_app.command("reset")
@reports_errors
def entities_reset(
    names: Annotated[list[str], typer.Argument(help="Entity names.", metavar="NAME...")],
) -> None:
    """Mark initial exports as not started, so that the next initial export runs again."""
    reset = api.entities_reset(_options.config(), names)
    out.print(f"initial export reset: {', '.join(reset)}", highlight=False)


@app.command()
@reports_errors
def runs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    job: Annotated[str | None, typer.Option(help="Only runs of this job.", metavar="JOB")] = None,
    limit: Annotated[
        int, typer.Option(help="At most this many runs, newest first.", metavar="N")
    ] = 50,
) -> None:
    """History of runs: job, run number, status, times, rows, files."""
    records = api.list_runs(_options.config(), job=_job_name(job), limit=limit)
    if as_json:
        print_json([views.run_view(record).model_dump(mode="json") for record in records])
        return
    table = Table(
        "job", "run", "status", "started (UTC)", "seconds", "rows", "files", "bytes", "error"
    )
    for r in records:
        seconds = f"{r.duration_seconds:.2f}" if r.duration_seconds is not None else ""
        table.add_row(
            r.job,
            str(r.run_number),
            r.status,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            seconds,
            str(r.rows),
            str(r.files),
            str(r.bytes),
            r.error,
        )
    out.print(table)


Location = Annotated[
    str | None,
    typer.Argument(
        help="A directory or fsspec URL holding exports (default: [output] location).",
        metavar="[LOCATION]",
    ),
]


@app.command()
@reports_errors
def verify(
    location: Location = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every export at LOCATION (checksums, completeness, chain) without loading."""
    inventory, found = api.verify(_options.config(), location)
    problems = [p for p in found if p.serious]
    notes = [p for p in found if not p.serious]  # things that are no export, left alone
    if as_json:
        print_json(views.verify_view(inventory, found).model_dump(mode="json"))
    else:
        for problem in problems:
            out.print(str(problem), highlight=False, markup=False)
        for note in notes:
            out.print(f"note: {note}", highlight=False, markup=False)
        out.print(
            f"{len(inventory.tables)} table export(s), {len(inventory.runs)} entity run(s): "
            + (f"{len(problems)} problem(s)" if problems else "all verified"),
            highlight=False,
        )
    if problems:
        raise typer.Exit(1)


class LoadOnly(StrEnum):
    tables = "tables"
    entities = "entities"


@app.command()
@reports_errors
def load(
    location: Location = None,
    target: Annotated[
        str | None, typer.Option(help="Target database URL ([target] url).", metavar="URL")
    ] = None,
    only: Annotated[
        LoadOnly | None,
        typer.Option(help="Load table exports or entity runs alone.", metavar="tables|entities"),
    ] = None,
) -> None:
    """Apply every complete export not yet applied at LOCATION to the target, in order."""
    config = _options.config()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows and records"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("loading", total=None)

        def progress(step: LoadStep) -> None:
            bar.update(task, description=step.doing, completed=step.done, total=step.total)

        result = api.load(
            config,
            location,
            target,
            progress=progress,
            only=only.value if only else None,
        )
    if not result.tables and not result.runs:
        out.print("nothing to load: every complete export is applied", highlight=False)
    else:
        out.print(
            f"loaded {len(result.tables)} table export(s) ({result.rows} row(s) written or "
            f"deleted) and {len(result.runs)} entity run(s) ({result.records} record(s))",
            highlight=False,
        )
    if result.waiting:
        out.print(f"{result.waiting} is still being written: loaded up to it", highlight=False)
    if target and target != config.target.url:
        err.print(
            "Note: overview, runs and the dashboard follow [target] url, not --target; "
            f"set it (or TIDEGATE_TARGET__URL) to follow {logs.redacted(target)}",
            markup=False,
        )


@app.command("target-ddl")
@reports_errors
def target_ddl(
    dialect: Annotated[
        str | None,
        typer.Option(
            help="postgresql, sqlite, duckdb or mysql (mariadb) (default: [target] url's).",
            metavar="NAME",
        ),
    ] = None,
    partitioned: Annotated[
        bool, typer.Option(help="Hash-partition tables by primary key where the dialect can.")
    ] = False,
    location: Annotated[
        str | None,
        typer.Option(help="Where the exports are ([output] location).", metavar="LOCATION"),
    ] = None,
) -> None:
    """Print the SQL that creates the target tables for the exported tables."""
    text = api.target_ddl(_options.config(), dialect, partitioned=partitioned, location=location)
    print(text, end="")


@app.command()
@reports_errors
def overview(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The pipeline at a glance: table-export chain, load position, entities, recent runs
    (what the dashboard shows)."""
    view = views.overview_view(api.overview(_options.config()))
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    chain, position = view.chain, view.load
    lines = [
        f"source: {view.source}",
        f"table exports: {chain.exports}, last {chain.last_folder or 'none'}"
        + (f" (hwm {chain.audit_key})" if chain.audit_key is not None else ""),
        f"pending changes: {chain.pending_changes}, lag {chain.lag_seconds:.1f} s"
        + (f"; {chain.planned} is planned and not yet written" if chain.planned else ""),
        f"target: {position.target}: {position.applied} export(s) applied, last table export "
        f"{position.last_table_export or 'none'}, last entity run "
        f"{position.last_entity_run or 'none'}",
        f"to load: {len(position.pending_table_exports)} table export(s), "
        f"{len(position.pending_entity_runs)} entity run(s)"
        + (f"; {position.waiting} is being written" if position.waiting else ""),
    ]
    if position.error:
        lines.append(f"target not readable: {position.error}")
    for line in lines:
        out.print(line, highlight=False, markup=False)
    table = Table("entity", "class", "enabled", "ongoing", "initial", "queue")
    for e in view.entities:
        table.add_row(
            e.name,
            e.export_class,
            "yes" if e.enabled else "no",
            "on" if e.ongoing else "off",
            e.initial_status,
            str(e.queue_depth),
        )
    out.print(table)


@app.command()
@reports_errors
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on ([serve] host).", metavar="H")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="TCP port ([serve] port); 0 picks a free one.", metavar="P", min=0),
    ] = None,
) -> None:
    """Web dashboard, JSON API and the [schedule], in one process, until interrupted."""
    from tidegate.web.server import serve as run_server  # the web stack loads only here

    run_server(  # returns on Ctrl-C or SIGTERM (uvicorn handles both)
        _options.config(),
        host,
        port,
        ready=lambda url: err.print(f"tidegate serve: dashboard at {url}", markup=False),
    )


def _job_name(job: str | None) -> JobName | None:
    jobs: tuple[JobName, ...] = ("init", "claim", "tables", "initial", "ongoing", "load")
    if job is None:
        return None
    for name in jobs:
        if name == job:
            return name
    raise TidegateError(f"--job: unknown job {job!r}", f"use one of: {', '.join(jobs)}")


@app.command()
@reports_errors
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to create the demo.", metavar="DIR")
    ] = Path("tidegate-demo"),
) -> None:
    """Create a sample SQLite source, export it both ways, load a target, prove it equal."""
    report = run_demo(directory, say=lambda text: out.print(text, highlight=False))
    table = Table("table", "changes made", "changes claimed", "match")
    for name, (made, claimed) in report.per_table.items():
        table.add_row(name, str(made), str(claimed), "yes" if made == claimed else "NO")
    out.print(table)
    if not report.ok:
        raise TidegateError(
            "demo: the claimed changes differ from the changes made",
            "this is a bug; please report it with the demo folder",
        )
    out.print(
        f"every committed change was claimed exactly once (audit keys "
        f"{', '.join(map(str, report.audit_keys))}); the rolled-back one was not",
        highlight=False,
    )
    compared = Table("table", "rows in the source", "rows in the target", "equal")
    for name, (in_source, in_target, equal) in report.compared.items():
        compared.add_row(name, str(in_source), str(in_target), "yes" if equal else "NO")
    out.print(compared)
    if not report.target_equal:
        raise TidegateError(
            "demo: the target differs from the source after load",
            "this is a bug; please report it with the demo folder",
        )
    out.print("the target equals the source, table by table", highlight=False)
    out.print(
        f"see it all in the dashboard: tidegate --config {directory / 'tidegate.toml'} serve",
        highlight=False,
        markup=False,
    )


def entry_point() -> None:
    """The `tidegate` command (its console script, and `python -m tidegate`): the app,
    then a quick exit."""
    try:
        app()
    finally:
        # At exit Python collects garbage over every object the run imported or made: 0.4 s
        # after a load into Iceberg (pyiceberg, SQLAlchemy and pydantic hold a great many),
        # for memory the operating system takes back at once. Work, files and logs are
        # closed and flushed by now; freezing leaves those objects out of that collection.
        gc.freeze()
