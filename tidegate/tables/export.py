"""One table-export run: plan, claim, write the folder, publish it, record it.

The caller holds the `tables` job lock. A run is crash-safe by construction: the export is
recorded as `planned` (with its name) before anything is written, the folder is published
whole, and only then is the export marked `published`. A run that dies anywhere leaves a
`planned` export that the next run finishes (the folder was already published) or redoes
under the same name (it was not); the claimed changes stay in tidegate_change, so nothing
is lost.

A run that loses its lock while it runs is fenced (see `tidegate.lock`): recording the
plan, publishing the folder and marking it published each happen only while the lock is
still held, so a run that lost it stops, as if it had died there, and never publishes over
the run that took the lock since, nor continues the chain from where it used to stand.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from tidegate.capture import captured_tables, oldest_pending_us
from tidegate.capture.ticks import claim
from tidegate.clients import ClientCannotWrite
from tidegate.db import Database
from tidegate.errors import ExportError, FormatError
from tidegate.formats import manifest as manifest_format
from tidegate.formats.manifest import HighWaterMark, Manifest, MemberSize, TableEntry
from tidegate.formats.naming import SCHEMA_MEMBER, ExportName, deleted_member_name
from tidegate.formats.tablezip import TableZipWriter, sha1_line
from tidegate.lock import HeldLock
from tidegate.model import from_us, now_us, to_us
from tidegate.prefetch import prefetched
from tidegate.retention import kept_since
from tidegate.storage import Location
from tidegate.tables import drift, stream
from tidegate.tables.pipeline import non_empty, transcoded
from tidegate.tables.plan import ExportRecord, NewExport, Redo, Restart, StreamState, next_step
from tidegate.tables.readers import RowReader, reader_for
from tidegate.tables.schema import TableSpec, reflect, schema_document
from tidegate.tables.selection import (
    Selection,
    change_counts,
    data_time_range,
    tables_with_changes,
    truncated_tables,
)
from tidegate.version import __version__

Progress = Callable[[str, int], None]
"""Called with a table name and the number of rows just written."""
Planned = Callable[[int], None]
"""Called once per folder, before its rows are read, with about how many it will write: the
source's row estimate of each table exported whole, the number of captured changes of each
other table (a key changed twice counts twice)."""


@dataclass(frozen=True)
class ExportSettings:
    """The configuration an export run uses."""

    max_span: timedelta
    encoding: str
    timezone: str
    time_columns: tuple[tuple[str, str], ...]
    keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # [tables] keys


@dataclass(frozen=True)
class ExportResult:
    """One published export folder."""

    name: str
    audit_key: int
    kind: str
    restart: str | None
    tables: tuple[TableEntry, ...]
    rows: int
    bytes: int
    redone: bool
    claim_until_us: int | None


def run_once(
    db: Database,
    lock: HeldLock,
    location: Location,
    settings: ExportSettings,
    restart: Restart | None = None,
    progress: Progress | None = None,
    *,
    location_moved: bool = False,
    planned: Planned | None = None,
) -> ExportResult | None:
    """Write at most one export folder; None when there is nothing to export.
    `location_moved`: the stream's folders were moved to `location`, which it follows
    from now on (a restart other than a re-export may go to a new location too).
    `planned` is told about how many rows the folder will hold (see Planned).

    Raises:
        ExportError: `location` is not the stream's (`stream.follow_location`).
        LockLost: the `tables` lock was lost; the run stopped before its next step.
    """
    # A restart starts a new stream, which may go to a new location (a re-export goes
    # on with the stream where it is).
    starts_anew = restart is not None and restart.mode != "reexport"
    stream.follow_location(db, location, moved=location_moved or starts_anew)
    if restart is not None and restart.mode == "reexport":
        _refuse_beyond_kept(db, restart)
    with db.engine.connect() as conn:
        redo_pending = stream.planned(db, conn) is not None
    if not redo_pending:
        # Not before a dead run's export is redone: its plan may have the changed table
        # whole with the rows from before the change, and recording it published would
        # undo the mark that has the table exported whole again. The run after it follows.
        drift.follow(db, dict(settings.time_columns), dict(settings.keys), settings.timezone)
    state = _stream_state(db, settings)
    step = next_step(state, restart)
    if step is None:
        return None
    if isinstance(step, Redo):
        record, claim_until = step.record, None
        published = _published_folder(location, record)
    else:
        if state.last is None:
            _refuse_an_older_chain(location)
        record, claim_until = _plan(db, lock, step, state), step.claim_until_us
        published = None
    entries, size = published or _write(
        db,
        lock,
        location,
        record,
        settings,
        progress or (lambda _t, _n: None),
        planned,
    )
    rows = sum(entry.rows + entry.deleted for entry in entries)
    stream.mark_published(db, lock, record, rows, size)
    stream.remember_location(db, location)
    return ExportResult(
        record.name,
        record.hwm_to,
        record.kind,
        record.restart,
        tuple(entries),
        rows,
        size,
        isinstance(step, Redo),
        claim_until,
    )


def _refuse_beyond_kept(db: Database, restart: Restart) -> None:
    """A re-export since before the kept window would miss the changes removed since."""
    with db.engine.connect() as conn:
        kept = kept_since(db, conn)
    if kept is not None and restart.since_us is not None and restart.since_us < to_us(kept):
        raise ExportError(
            f"--reexport-since {from_us(restart.since_us).isoformat()}: changes before "
            f"{kept.isoformat()} are no longer kept ([capture] keep); the oldest date a "
            f"re-export can reach is {kept.isoformat()}",
            "re-export since that date or later, or --restart-from DATE, which reads the "
            "tables themselves",
        )


def _published_folder(
    location: Location, record: ExportRecord
) -> tuple[tuple[TableEntry, ...], int] | None:
    """The table entries and zip size of a folder a dead run had already published (only
    its record was left to write); None when it is not there or not complete."""
    name = ExportName.parse(record.name)
    if not location.exists(record.name, name.manifest_name):
        return None
    data = location.read_bytes(
        record.name, name.manifest_name, limit=manifest_format.MAX_MANIFEST_BYTES
    )
    manifest = manifest_format.parse(data, name.manifest_name)
    return manifest.tables, location.size(record.name, name.zip_name)


def _stream_state(db: Database, settings: ExportSettings) -> StreamState:
    with db.engine.connect() as conn:
        tables = tuple(sorted(captured_tables(db, conn)))
        return StreamState(
            now_us=now_us(),
            max_span_us=settings.max_span // timedelta(microseconds=1),
            last=stream.last_published(db, conn),
            planned=stream.planned(db, conn),
            oldest_pending_us=oldest_pending_us(db, conn),
            max_claimed_key=stream.max_claimed_key(db, conn),
            tables=tables,
            unsnapshotted=stream.unsnapshotted(db, conn),
            shape_changes=bool(drift.announced(db, conn)),
        )


def _refuse_an_older_chain(location: Location) -> None:
    """Before a source's first export: refuse a location that holds table exports already
    (a stream before `uninstall` and `init`), whose numbers the new stream's would fall
    under, so that a loader would take its exports for old ones."""
    names = []
    for folder in location.folders():
        with contextlib.suppress(FormatError):
            names.append(ExportName.parse(folder))
    if names:
        newest = max(names).format()
        raise ExportError(
            f"{location.label}: {location.url} already holds table exports up to {newest}, "
            "of a stream this source no longer knows (tidegate was uninstalled and "
            "installed again): the new stream's exports would be numbered under them",
            "export into an empty location (set [output] location), or move the old "
            "exports away once every target has loaded them",
        )


def _plan(db: Database, lock: HeldLock, step: NewExport, state: StreamState) -> ExportRecord:
    """Claim (if the step says so), work out the chain position and name, record it."""
    if step.claim:
        claimed = claim(db, until_us=step.claim_until_us, force=True)
        assert claimed is not None  # force=True always claims
        audit_key, claimed_us = claimed.audit_key, to_us(claimed.claimed_at)
    else:
        audit_key = state.max_claimed_key
        with db.engine.connect() as conn:
            claimed_us = stream.claim_time_us(db, conn, audit_key) or state.now_us
    last = state.last
    with db.engine.connect() as conn:
        hwm_from_us = last.hwm_to_us if last else stream.installed_us(db, conn)
        export_no = stream.next_export_no(db, conn)
        record = ExportRecord(
            export_no=export_no,
            name="",
            status="planned",
            stream=step.stream,
            kind=step.kind,
            restart=step.restart,
            since_us=step.since_us,
            hwm_from=last.hwm_to if last else 0,
            hwm_from_us=hwm_from_us,
            hwm_to=audit_key,
            hwm_to_us=claimed_us,
            min_data_us=0,
            max_data_us=0,
            name_data_us=0,
            window_lo_us=step.window_lo_us,
            window_hi_us=step.window_hi_us,
            reexport_until_us=step.reexport_until_us,
            snapshot_tables=step.snapshot_tables,
            created_us=state.now_us,
        )
        record = replace(record, snapshot_tables=_whole_tables(db, conn, record))
        low, high = _data_times(db, conn, record, state.now_us)
    name_data_us = max(last.name_data_us if last else 0, high)
    name = ExportName(audit_key, from_us(name_data_us)).format()
    record = replace(
        record, name=name, min_data_us=low, max_data_us=high, name_data_us=name_data_us
    )
    stream.insert_planned(db, lock, record)
    return record


def _whole_tables(db: Database, conn: Connection, record: ExportRecord) -> tuple[str, ...]:
    """The tables the export writes whole: those its plan says, those a claimed TRUNCATE
    emptied (their keys are gone: only the whole table says which rows are left), and
    the changed tables without a key (no key says which row a change was)."""
    if record.kind == "snapshot":
        return record.snapshot_tables
    selection = _selection(record, ())
    captured = captured_tables(db, conn).values()
    whole = truncated_tables(db, conn, selection)
    keyless = {t.table_id for t in captured if not t.key_columns}
    if keyless:
        whole |= keyless & tables_with_changes(db, conn, selection)
    found = {t.name for t in captured if t.table_id in whole}
    return tuple(sorted(set(record.snapshot_tables) | found))


def _data_times(db: Database, conn: Connection, record: ExportRecord, now: int) -> tuple[int, int]:
    """The data-time range an export covers: its changes' data times, and the time of the
    snapshot for tables exported whole."""
    if record.kind == "snapshot":
        return (record.since_us if record.since_us is not None else now), now
    low, high = data_time_range(db, conn, _selection(record, ()))
    times = [t for t in (low, high) if t is not None]
    if record.snapshot_tables or not times:
        times.append(now)
    return min(times), max(times)


def _selection(
    record: ExportRecord, time_columns: tuple[tuple[str, str], ...], timezone: str = "UTC"
) -> Selection:
    since = None
    if record.restart == "from" and record.since_us is not None:
        since = from_us(record.since_us).astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    return Selection(
        audit_from=record.hwm_from,
        audit_to=record.hwm_to,
        window_lo_us=record.window_lo_us,
        window_hi_us=record.window_hi_us,
        whole=frozenset(record.snapshot_tables),
        since=since,
        time_columns=time_columns,
    )


def _write(
    db: Database,
    lock: HeldLock,
    location: Location,
    record: ExportRecord,
    settings: ExportSettings,
    progress: Progress,
    planned: Planned | None,
) -> tuple[list[TableEntry], int]:
    """Write and publish the export's folder; returns its table entries and zip size."""
    try:
        return _write_folder(
            db, lock, location, record, settings, progress, planned, in_process=False
        )
    except ClientCannotWrite:
        # Rare (a text holding NUL): the folder is written again, every table read
        # in-process, slower but exact.
        return _write_folder(
            db, lock, location, record, settings, progress, planned, in_process=True
        )


def _write_folder(
    db: Database,
    lock: HeldLock,
    location: Location,
    record: ExportRecord,
    settings: ExportSettings,
    progress: Progress,
    planned: Planned | None,
    *,
    in_process: bool,
) -> tuple[list[TableEntry], int]:
    with db.engine.connect() as conn:
        captured = list(captured_tables(db, conn).values())
        selection = _selection(record, settings.time_columns, settings.timezone)
        changes = {} if record.kind == "snapshot" else change_counts(db, conn, selection)
        shape_changes = drift.announced(db, conn)
    specs = reflect(db, captured)
    with db.engine.connect() as conn:
        # DDL since the run compared shapes: a table its loader could not merge goes whole.
        selection = replace(selection, whole=selection.whole | drift.unmergeable(db, conn, specs))
        exported = [s for s in specs if s.name in selection.whole or s.table_id in changes]
        if planned is not None:  # (the estimates cost a query: only when somebody shows them)
            planned(_planned_rows(db, conn, exported, selection, changes))
    version, schema_json = schema_document(specs)
    name = ExportName.parse(record.name)
    transcoding = codecs.lookup(settings.encoding).name != "utf-8"
    reader = reader_for(db, record_aligned=transcoding or in_process)
    entries: list[TableEntry] = []
    publish = f"publishing {record.name}"
    with location.publishing(record.name, confirm=lambda: lock.confirm(publish)) as folder:
        with folder.open(name.zip_name) as target:
            archive = TableZipWriter(target, from_us(record.created_us))
            try:
                archive.add(SCHEMA_MEMBER, [schema_json], records=False)
                for spec in exported:
                    lock.check(publish)  # a lock the keep-alive found lost: stop early
                    entries.append(
                        _write_table(archive, reader, spec, selection, settings, progress)
                    )
            except BaseException:
                archive.abort()
                raise
            written = archive.close()
        folder.write(name.zip_sha1_name, sha1_line(written.sha1, name.zip_name))
        manifest = replace(
            _manifest(record, version, entries, archive.members, settings.encoding),
            shape_changes=shape_changes,
        )
        # Written last: on object stores its presence is what marks the folder complete.
        folder.write(name.manifest_name, manifest_format.render(manifest))
    return entries, written.size


def _planned_rows(
    db: Database,
    conn: Connection,
    exported: list[TableSpec],
    selection: Selection,
    changes: dict[int, int],
) -> int:
    """About how many rows a folder will hold (see Planned)."""
    whole = [spec.table for spec in exported if spec.name in selection.whole]
    estimates = db.dialect.row_estimates(conn, whole, db.schema) if whole else {}
    return sum(
        estimates.get(spec.name, 0)
        if spec.name in selection.whole
        else changes.get(spec.table_id, 0)
        for spec in exported
    )


def _write_table(
    archive: TableZipWriter,
    reader: RowReader,
    spec: TableSpec,
    selection: Selection,
    settings: ExportSettings,
    progress: Progress,
) -> TableEntry:
    rows = [0]
    deleted = [0]

    def count_rows(n: int) -> None:
        rows[0] += n
        progress(spec.name, n)

    def count_deleted(n: int) -> None:
        deleted[0] += n

    chunks = reader.rows(spec, selection, count_rows)
    archive.add(spec.file, prefetched(transcoded(chunks, settings.encoding, spec)))
    if spec.name not in selection.whole:
        gone = non_empty(reader.deleted(spec, selection, count_deleted))
        if gone is not None:
            archive.add(deleted_member_name(spec.name), transcoded(gone, settings.encoding, spec))
    return TableEntry(spec.name, spec.file, rows[0], deleted[0], spec.name in selection.whole)


def _manifest(
    record: ExportRecord,
    version: str,
    entries: list[TableEntry],
    members: list[MemberSize],
    encoding: str,
) -> Manifest:
    since = record.since_us if record.restart else None
    return Manifest(
        created=from_us(record.created_us),
        schema_version=version,
        tidegate_version=__version__,
        hwm_from=HighWaterMark(record.hwm_from, from_us(record.hwm_from_us)),
        hwm_to=HighWaterMark(record.hwm_to, from_us(record.hwm_to_us)),
        max_data_time=from_us(record.name_data_us),
        kind=record.kind,
        stream=record.stream,
        sequence=record.export_no,
        min_data_time=from_us(record.min_data_us),
        restart=record.restart,
        since=from_us(since) if since is not None else None,
        tables=tuple(entries),
        members=tuple(members),
        encoding=encoding,
    )
