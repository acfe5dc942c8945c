"""The library API: every command of the CLI is one call here.

Each function takes a :class:`~tidegate.config.Config`, does one job, and returns plain
data. Errors are :class:`~tidegate.errors.TidegateError` subclasses with a message and a
hint; nothing here prints or exits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tidegate import capture, runs, urls
from tidegate.config import Config
from tidegate.db import Database, connect, connection_lost
from tidegate.entities import records
from tidegate.entities.catalog import Entity, catalog, left_out
from tidegate.entities.files import WrittenFile
from tidegate.entities.initial import InitialResult, InitialSettings, pending_entities, run_initial
from tidegate.entities.initial import Progress as InitialProgress
from tidegate.entities.ongoing import OngoingResult, OngoingSettings, run_ongoing
from tidegate.entities.records import EntityStatus
from tidegate.errors import ConfigError, EntityRefused, TargetError
from tidegate.formats.naming import ExportName
from tidegate.jobs import recorded_run
from tidegate.load.iceberg import IcebergTarget, is_iceberg, load_history
from tidegate.load.iceberg_load import load_iceberg
from tidegate.load.inventory import Inventory, Problem
from tidegate.load.loader import LoadKind, LoadResult
from tidegate.load.loader import Progress as LoadProgress
from tidegate.load.loader import load as load_location
from tidegate.load.position import LoadPosition
from tidegate.load.position import load_position as position_at
from tidegate.load.schemas import newest_schemas
from tidegate.load.target import Target, ddl
from tidegate.load.targets import DIALECTS
from tidegate.load.verify import verify as verify_location
from tidegate.lock import job_lock
from tidegate.model import Change, Claim, InitReport, JobName, RunRecord, now_us, to_us
from tidegate.retention import TableSize, purge, table_sizes
from tidegate.runs import RunCounters
from tidegate.storage import Location
from tidegate.tables.chain import ChainStatus
from tidegate.tables.chain import chain_status as chain_of
from tidegate.tables.export import ExportResult, ExportSettings, Planned, Progress, run_once
from tidegate.tables.plan import Restart
from tidegate.tables.stream import backlog_before

log = logging.getLogger(__name__)


def open_source(config: Config) -> Database:
    """Connect to the configured source, checking driver, server and schema first.

    The caller owns the engine and disposes of it when done; `source` does that for a block.

    Raises:
        ConfigError: bad URL or missing driver.
        SourceUnavailable: the server refused the connection.
    """
    return connect(
        config.source.url, origin=config.origin, section="source", schema=config.source.schema_
    )


@contextmanager
def source(config: Config) -> Iterator[Database]:
    """The configured source for the duration of a block; its connections closed after.

    A session the server ends under a statement of the block (an administrator, a restart,
    an idle timeout) becomes one `SourceUnavailable` line: every command is safe to run
    again, its unfinished transaction having been rolled back with the session.
    """
    db = open_source(config)
    try:
        yield db
    except sa.exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
        raise connection_lost(error) from error
    finally:
        db.engine.dispose()


def init(config: Config, *, wait_seconds: float = 0) -> InitReport:
    """Create tidegate's control tables and install change capture (`tidegate init`).

    Safe to run again: it picks up newly included tables and drops capture from tables no
    longer included. Recorded in run history as job ``init``.

    Raises:
        CaptureError: a selected table has no primary key, or no table is selected.
        JobBusy: another `init` is running.
    """
    with source(config) as db, job_lock(db, "init", wait_seconds=wait_seconds):
        started = now_us()
        report = capture.install(db, config.tables, config.source.timezone)
        # The run table exists only once install has created it, so the run is written
        # when it is over.
        record = runs.start(db, "init", started_us=started)
        counters = RunCounters(rows=len(report.installed) + len(report.refreshed))
        runs.finish(db, record, "succeeded", counters)
    return report


def uninstall(config: Config, *, wait_seconds: float = 0) -> list[str]:
    """Remove every trigger, function and table tidegate put in the source.

    Returns:
        The tables whose capture was removed.
    """
    with source(config) as db, job_lock(db, "init", wait_seconds=wait_seconds):
        return capture.uninstall(db)


def claim_changes(
    config: Config, *, before: datetime | None = None, wait_seconds: float = 0
) -> Claim | None:
    """Stamp every committed, unclaimed change with the next audit key.

    A change whose transaction is still open is left for a later claim, never skipped and
    never claimed twice. Recorded in run history as job ``claim``.

    Args:
        config: the configuration.
        before: claim only changes captured before this time (timezone-aware).
        wait_seconds: how long to wait for another claim to finish.

    Returns:
        The claim, or None when nothing was pending.
    """
    with source(config) as db, recorded_run(db, "claim", wait_seconds=wait_seconds) as counters:
        claimed = capture.claim(db, until_us=to_us(before) if before else None)
        counters.rows = claimed.changes if claimed else 0
    return claimed


def export_tables(
    config: Config,
    *,
    restart_from_beginning: bool = False,
    restart_from: datetime | None = None,
    reexport_since: datetime | None = None,
    until_caught_up: bool = False,
    wait_seconds: float = 0,
    progress: Progress | None = None,
    location_moved: bool = False,
    planned: Planned | None = None,
) -> list[ExportResult]:
    """Run table export (`tidegate export tables`): at most one folder, or, with
    ``until_caught_up``, runs until nothing that was pending at the start is left.

    Args:
        config: the configuration.
        restart_from_beginning: start a new stream with a snapshot of every table.
        restart_from: start a new stream with every row whose data time is at or after this.
        reexport_since: export again every row changed since this, forward from the last
            export. A naive datetime is read in ``[source] timezone``.
        until_caught_up: repeat runs while changes pending at the start remain.
        wait_seconds: how long to wait for another table export to finish.
        progress: called with (table, rows) as rows are written.
        location_moved: the stream's export folders were moved to `[output] location`:
            follow them there (else a location other than the stream's is refused).
        planned: called before each folder's rows are read with about how many it will
            hold (row estimates, change counts), for a progress display's total.

    Returns:
        The folders written, oldest first; empty when nothing was pending.

    Raises:
        ConfigError: more than one restart option.
        JobBusy: another table export is running.
        LockLost: the job's lock was lost while the run ran; it stopped before publishing
            anything more, and the next run goes on from there.
        ExportError, OutputError: the export could not be written.
    """
    restart = _restart(config, restart_from_beginning, restart_from, reexport_since)
    settings = ExportSettings(
        max_span=config.tables.max_span,
        encoding=config.output.encoding,
        timezone=config.source.timezone,
        time_columns=tuple(config.tables.time_columns.items()),
        keys=tuple(config.tables.keys.items()),
    )
    location = _output(config)
    results: list[ExportResult] = []
    started = now_us()
    with source(config) as db:
        while True:
            with recorded_run(db, "tables", wait_seconds=wait_seconds) as run:
                result = run_once(
                    db,
                    run.lock,
                    location,
                    settings,
                    restart,
                    progress,
                    location_moved=location_moved,
                    planned=planned,
                )
                if result is not None:
                    run.rows, run.files, run.bytes = result.rows, 3, result.bytes
                purge(db, config.capture.keep, queue="tables")
            if result is None:
                break
            results.append(result)
            if result.redone and restart is not None:
                continue  # a dead run's export, redone first: the restart asked for is next
            restart = None
            if not until_caught_up or not backlog_before(db, started):
                break
    return results


def _restart(
    config: Config, beginning: bool, since: datetime | None, reexport: datetime | None
) -> Restart | None:
    chosen = [
        name
        for name, value in (
            ("--restart-from-beginning", beginning),
            ("--restart-from", since),
            ("--reexport-since", reexport),
        )
        if value
    ]
    if len(chosen) > 1:
        raise ConfigError(
            f"{' and '.join(chosen)} cannot be used together", "choose one restart option"
        )
    zone = ZoneInfo(config.source.timezone)

    def moment(value: datetime) -> int:
        return to_us(value if value.tzinfo else value.replace(tzinfo=zone))

    if beginning:
        return Restart("beginning")
    if since is not None:
        return Restart("from", moment(since))
    if reexport is not None:
        return Restart("reexport", moment(reexport))
    return None


def entities_list(config: Config) -> list[EntityStatus]:
    """Every entity with its export class, eligibility, control record and queue depth."""
    with source(config) as db:
        _require(db)
        return records.statuses(db, _catalog(db, config))


def entities_left_out(config: Config) -> dict[str, str]:
    """Each source table in no entity, and why (`tidegate entities list`)."""
    with source(config) as db:
        _require(db)
        return left_out(db, config.entities, config.tables.selects)


def entities_enable(
    config: Config, names: Sequence[str] = (), *, all_eligible: bool = False, ongoing: bool = False
) -> list[str]:
    """Enable entities for export (`tidegate entities enable`); with `ongoing`, install the
    capture that queues their changes. Enable ongoing export before the initial export,
    so that changes made during it are not missed.

    Returns:
        The names of the entities enabled.

    Raises:
        ConfigError: an unknown name (the message names it and the nearest entity).
        EntityRefused: a specialized or none entity, or one that cannot be exported.
    """
    with source(config) as db, job_lock(db, "ongoing"):
        _require(db)
        known = _catalog(db, config)
        chosen = (
            [entity for entity in known if entity.eligible]
            if all_eligible
            else records.resolve(names, known)
        )
        records.enable(db, chosen, ongoing=ongoing)
        return [entity.name for entity in chosen]


def entities_disable(
    config: Config, names: Sequence[str], *, ongoing_only: bool = False
) -> list[str]:
    """Disable entities (`tidegate entities disable`), or only their ongoing capture."""
    with source(config) as db, job_lock(db, "ongoing"):
        _require(db)
        chosen = records.resolve(names, _catalog(db, config))
        records.disable(db, chosen, ongoing_only=ongoing_only)
        return [entity.name for entity in chosen]


def entities_reset(config: Config, names: Sequence[str]) -> list[str]:
    """Mark initial exports as not started (`tidegate entities reset`)."""
    with source(config) as db, job_lock(db, "initial"):
        _require(db)
        chosen = records.resolve(names, _catalog(db, config))
        records.reset(db, chosen)
        return [entity.name for entity in chosen]


def export_initial(
    config: Config,
    names: Sequence[str] = (),
    *,
    threads: int | None = None,
    records_per_file: int | None = None,
    prefix: str | None = None,
    wait_seconds: float = 0,
    progress: InitialProgress | None = None,
    total: Callable[[int], None] = lambda _total: None,
) -> InitialResult | None:
    """Initial entity export (`tidegate export initial`): the named entities, or every
    enabled entity whose initial export has not completed. Options default to
    `[entities]` in the config. `progress` is told each batch of records written, `total`
    how many entities the run writes (before the first).

    Returns:
        What the run wrote, or None when no entity needed an initial export.

    Raises:
        ConfigError: an unknown entity name.
        EntityRefused: a named entity that cannot be exported.
        JobBusy: another initial export is running.
        LockLost: the job's lock was lost while the run ran; it stopped before its
            manifest or before marking entities complete.
    """
    settings = InitialSettings(
        threads=threads or config.entities.threads,
        records_per_file=(
            config.entities.records_per_file if records_per_file is None else records_per_file
        ),
        prefix=config.entities.file_prefix if prefix is None else prefix,
        timezone=config.source.timezone,
    )
    location = _output(config)
    with source(config) as db:
        _require(db)
        known = _catalog(db, config)
        if names:
            chosen = records.resolve(names, known)
            for entity in chosen:
                if not entity.eligible:
                    raise EntityRefused(entity.refusal(), "export generalized entities only")
            records.ensure(db, chosen)
        else:
            chosen = pending_entities(db, known)
        if not chosen:
            return None
        with recorded_run(db, "initial", wait_seconds=wait_seconds) as run:
            result = run_initial(
                db,
                run.lock,
                location,
                chosen,
                run.run_number,
                settings,
                progress or (lambda _e, _n: None),
                total,
            )
            _count(run, result.records, result.files)
            purge(db, config.capture.keep, queue="entities")
        return result


def export_ongoing(
    config: Config,
    *,
    threads: int | None = None,
    records_per_file: int | None = None,
    thread_limit: int | None = None,
    auto_backlog: bool | None = None,
    wait_seconds: float = 0,
    progress: InitialProgress | None = None,
) -> list[OngoingResult]:
    """Ongoing entity export (`tidegate export ongoing`): one run exporting a current
    snapshot of every queued entity, or, with `auto_backlog`, runs while a backlog remains.
    Options default to `[entities]` in the config.

    Returns:
        One result per run, oldest first.

    Raises:
        JobBusy: another ongoing export is running.
        LockLost: the job's lock was lost while the run ran; it stopped before its
            manifest or before removing the queue entries it exported.
    """
    settings = OngoingSettings(
        threads=threads or config.entities.threads,
        records_per_file=(
            config.entities.records_per_file if records_per_file is None else records_per_file
        ),
        thread_limit=config.entities.thread_limit if thread_limit is None else thread_limit,
        timezone=config.source.timezone,
    )
    again = config.entities.auto_backlog if auto_backlog is None else auto_backlog
    location = _output(config)
    results: list[OngoingResult] = []
    with source(config) as db:
        _require(db)
        known = _catalog(db, config)
        while True:
            with recorded_run(db, "ongoing", wait_seconds=wait_seconds) as run:
                result = run_ongoing(
                    db,
                    run.lock,
                    location,
                    known,
                    run.run_number,
                    settings,
                    progress or (lambda _e, _n: None),
                )
                _count(run, result.records, result.files)
                purge(db, config.capture.keep, queue="entities")
            results.append(result)
            if not (again and result.backlog):
                return results


def _catalog(db: Database, config: Config) -> list[Entity]:
    """The entities, discovered among the tables `[tables]` selects (or defined)."""
    return catalog(db, config.entities, config.tables.selects)


def _output(config: Config) -> Location:
    """The location an export writes to, its bucket checked before anything is claimed."""
    location = _location(config)
    location.require_bucket()
    return location


def _location(config: Config) -> Location:
    return Location(
        config.output.location,
        label=f"{config.origin}: [output] location",
        options=config.output.storage_options,
    )


def _count(counters: RunCounters, records: int, files: Sequence[WrittenFile]) -> None:
    """An entity run's counts for its run record (its manifest is one more file)."""
    counters.rows = records
    counters.files = len(files) + 1
    counters.bytes = sum(f.bytes for f in files)


def _require(db: Database) -> None:
    with db.engine.connect() as conn:
        runs.require_installed(db, conn)


def read_claim(config: Config, audit_key: int) -> Iterator[Change]:
    """Stream the changes claimed under an audit key, in capture order."""
    with source(config) as db:
        yield from capture.read_claim(db, audit_key)


def pending_changes(config: Config) -> dict[str, int]:
    """Committed, unclaimed changes per captured table."""
    with source(config) as db:
        with db.engine.connect() as conn:
            runs.require_installed(db, conn)
        return capture.pending_by_table(db)


def uncaptured_tables(config: Config) -> list[str]:
    """Tables `[tables] include` selects that `init` has not captured yet (created since)."""
    with source(config) as db:
        return capture.uncaptured(db, config.tables)


def footprint(config: Config) -> list[TableSize]:
    """Rows and bytes of each of tidegate's tables in the source (`tidegate status`)."""
    with source(config) as db:
        with db.engine.connect() as conn:
            runs.require_installed(db, conn)
        return table_sizes(db)


def list_runs(
    config: Config, *, job: JobName | None = None, limit: int | None = None
) -> list[RunRecord]:
    """Run history, newest first (`tidegate runs`): the source's, and the loads' from the
    target ([target] url) where there is one."""
    with source(config) as db:
        history = [] if job == "load" else runs.history(db, job=job, limit=limit)
    return _with_loads(config, history, job, limit)


def _with_loads(
    config: Config, history: list[RunRecord], job: JobName | None, limit: int | None
) -> list[RunRecord]:
    """`history` and the target's load runs, newest first; a target that cannot be read
    leaves them out, with a warning in the log (the source's history is still worth
    showing)."""
    if job not in (None, "load") or not config.target.url:
        return history
    url = config.target.url
    target = load_history(url) if is_iceberg(url) else Target(url)
    try:
        loads = target.runs(limit)
    except TargetError as error:
        log.warning("load runs left out: %s", error.message)
        loads = []
    finally:
        target.dispose()
    merged = sorted([*history, *loads], key=lambda r: r.started_at, reverse=True)
    return merged[:limit] if limit is not None else merged


def chain_status(config: Config) -> ChainStatus:
    """The table-export chain: last folder, high-water mark, pending changes, lag."""
    with source(config) as db:
        _require(db)
        return chain_of(db)


def load_position(
    config: Config, location: str | None = None, target_url: str | None = None
) -> LoadPosition:
    """What the target (default: [target] url) has applied, and the complete exports at the
    location (default: [output] location) it has not. Reads both; changes neither."""
    url = target_url or config.target.url
    return position_at(_read_location(config, location), url, config.target)


FreshnessState = Literal["fresh", "behind", "failing"]


@dataclass(frozen=True)
class Freshness:
    """How far the target is behind the source, end to end, and whether loading keeps up.

    `state` is `failing` when the last load failed or the target cannot be read, `behind`
    when complete exports wait to be loaded, else `fresh`."""

    lag_seconds: float  # see end_to_end_lag
    exports_waiting: int  # complete table folders and entity runs the target has not applied
    state: FreshnessState
    problem: str  # why it is failing: the last load's error, or the target's


@dataclass(frozen=True)
class Overview:
    """The whole pipeline at a glance: what the dashboard shows."""

    source: str  # the source URL, password hidden
    entities: list[EntityStatus]
    chain: ChainStatus
    load: LoadPosition
    runs: list[RunRecord]  # newest first
    freshness: Freshness


def overview(config: Config, *, runs_limit: int = 50) -> Overview:
    """Entities, the table-export chain, the load position and recent runs, read in one
    go over one source connection pool (`tidegate overview`)."""
    with source(config) as db:
        _require(db)
        statuses = records.statuses(db, _catalog(db, config))
        chain = chain_of(db)
        history = runs.history(db, limit=runs_limit)
        shown = db.display_url
    history = _with_loads(config, history, None, runs_limit)
    position = load_position(config)
    return Overview(shown, statuses, chain, position, history, freshness(chain, position, history))


def freshness(chain: ChainStatus, position: LoadPosition, history: list[RunRecord]) -> Freshness:
    """The end-to-end state of the pipeline (see Freshness); `history` newest first."""
    waiting = len(position.pending_table_exports) + len(position.pending_entity_runs)
    last_load = next((run for run in history if run.job == "load"), None)
    problem = position.error or (
        last_load.error or "the last load failed"
        if last_load is not None and last_load.status == "failed"
        else ""
    )
    state: FreshnessState = "failing" if problem else "behind" if waiting else "fresh"
    return Freshness(end_to_end_lag(chain, position), waiting, state, problem)


def end_to_end_lag(chain: ChainStatus, position: LoadPosition) -> float:
    """Seconds the target is behind the source: 0 when no change is pending in the source
    and every export is applied; else the age of the newest data time of the table exports
    the target applied (the age of the oldest pending change when it applied none)."""
    waiting = position.pending_table_exports or position.pending_entity_runs
    if not waiting and not chain.pending_changes:
        return 0.0
    now = datetime.now(UTC)
    if position.last_table_export:
        applied = ExportName.parse(position.last_table_export).max_data_time
        return max(0.0, (now - applied).total_seconds())
    oldest = chain.oldest_pending_at
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


def verify(config: Config, location: str | None = None) -> tuple[Inventory, list[Problem]]:
    """Check every export at the location (default: [output] location) without loading:
    the exports found and every problem with them."""
    return verify_location(_read_location(config, location))


def load(
    config: Config,
    location: str | None = None,
    target_url: str | None = None,
    progress: LoadProgress = lambda _step: None,
    only: LoadKind | None = None,
) -> LoadResult:
    """Apply every complete export not yet applied to the target (default: [target] url),
    in order, each exactly once; refuses, naming the file, anything tampered, incomplete
    or out of order, leaving the target as it was. `only`: table exports or entity runs
    alone; `progress` is told each step (`LoadStep`)."""
    url = target_url or config.target.url
    if is_iceberg(url):
        warehouse = IcebergTarget(url, config.target)
        zone = ZoneInfo(config.source.timezone)
        try:
            return load_iceberg(
                _read_location(config, location),
                warehouse,
                zone,
                progress,
                only,
                config.capture.keep,
            )
        finally:
            warehouse.dispose()
    target = Target(url)
    try:
        return load_location(
            _read_location(config, location),
            target,
            ZoneInfo(config.source.timezone),
            progress,
            only,
            config.capture.keep,
        )
    finally:
        target.dispose()


def target_ddl(
    config: Config,
    dialect: str | None = None,
    *,
    partitioned: bool = False,
    location: str | None = None,
) -> str:
    """The SQL creating the target tables for the newest schema of every table exported at
    the location, for a dialect (default: [target] url's)."""
    if dialect is None and is_iceberg(config.target.url):
        raise ConfigError(
            "target-ddl prints SQL, and [target] url is an Iceberg warehouse: load creates "
            "its tables",
            "pass --dialect to print the SQL of a database target",
        )
    if dialect is None:
        target = Target(config.target.url)
        chosen = target.dialect
        target.dispose()
    elif urls.one_name(dialect) in DIALECTS:
        chosen = DIALECTS[urls.one_name(dialect)]()
    else:
        raise ConfigError(
            f"--dialect {dialect!r} is not a target dialect", f"use one of {', '.join(DIALECTS)}"
        )
    schemas = newest_schemas(_read_location(config, location))
    return ddl(schemas, chosen, partitioned=partitioned)


def _read_location(config: Config, location: str | None) -> Location:
    if location is None:
        return _location(config)
    return Location(location, label="LOCATION", options=config.output.storage_options)
