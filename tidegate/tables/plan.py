"""What the next table-export run does, decided from the stream's state alone (pure).

The rules, in order:

1. An export planned by a run that died is redone first, under the same name.
2. `--restart-from-beginning` / `--restart-from DATE` start a new stream with a snapshot.
3. The first export of a stream is a snapshot of every table (`--reexport-since` too: it
   has no export to continue from, and the snapshot holds every row).
4. `--reexport-since DATE` starts re-exporting, forward from the last export, every row
   changed since DATE, one `max_span` window of data time per folder; later runs continue
   the windows until they reach the time of the request.
5. Changes already claimed but not exported (a claim made outside an export) are exported.
6. Otherwise the oldest pending changes, up to `max_span` of data time, are claimed and
   exported. Tables added to `[tables] include` since the last snapshot are exported whole.
7. With nothing pending, nothing is exported, unless a table's shape changed (or the
   table is gone) since the last export: an export reports it (tables/drift.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tidegate.formats.manifest import ExportKind, RestartMode


@dataclass(frozen=True)
class Restart:
    """A restart option of `tidegate export tables`."""

    mode: RestartMode
    since_us: int | None = None


@dataclass(frozen=True)
class ExportRecord:
    """One row of tidegate_export: an export folder, planned or published."""

    export_no: int
    name: str
    status: Literal["planned", "published"]
    stream: int
    kind: ExportKind
    restart: RestartMode | None
    since_us: int | None
    hwm_from: int
    hwm_from_us: int
    hwm_to: int
    hwm_to_us: int
    min_data_us: int
    max_data_us: int
    name_data_us: int
    window_lo_us: int | None
    window_hi_us: int | None
    reexport_until_us: int | None
    snapshot_tables: tuple[str, ...]
    created_us: int

    @property
    def reexport_unfinished(self) -> bool:
        """A re-export window short of the time the re-export was asked for."""
        return (
            self.restart == "reexport"
            and self.window_hi_us is not None
            and self.reexport_until_us is not None
            and self.window_hi_us < self.reexport_until_us
        )


@dataclass(frozen=True)
class StreamState:
    """What the planner needs to know about the source and the export stream."""

    now_us: int
    max_span_us: int
    last: ExportRecord | None = None
    planned: ExportRecord | None = None
    oldest_pending_us: int | None = None
    max_claimed_key: int = 0
    tables: tuple[str, ...] = ()
    unsnapshotted: tuple[str, ...] = ()
    shape_changes: bool = False  # changes of shape the next export is to report


@dataclass(frozen=True)
class NewExport:
    """A new export to claim for and write.

    Attributes:
        kind: snapshot (every row of every table) or incremental.
        restart: the restart option that led to it, if any.
        since_us: the date of that option.
        stream: the stream number.
        claim: whether to claim pending changes first (False: export claims already made).
        claim_until_us: claim only changes with data time before this.
        window_lo_us, window_hi_us: a re-export's data-time window.
        reexport_until_us: where re-exporting stops.
        snapshot_tables: tables exported whole.
    """

    kind: ExportKind
    stream: int
    restart: RestartMode | None = None
    since_us: int | None = None
    claim: bool = True
    claim_until_us: int | None = None
    window_lo_us: int | None = None
    window_hi_us: int | None = None
    reexport_until_us: int | None = None
    snapshot_tables: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Redo:
    """Finish or rewrite an export a dead run planned."""

    record: ExportRecord


Step = NewExport | Redo | None


def next_step(state: StreamState, restart: Restart | None = None) -> Step:
    """Decide the next export (see the module docstring for the rules)."""
    if state.planned is not None:
        return Redo(state.planned)
    last = state.last
    stream = last.stream if last else 1
    if restart is not None and restart.mode in ("beginning", "from"):
        return NewExport(
            "snapshot",
            stream + 1 if last else 1,
            restart.mode,
            restart.since_us,
            snapshot_tables=state.tables,
        )
    if last is None:
        # Also for a re-export: with nothing exported yet there is nothing to re-export
        # forward from, and the stream's snapshot holds every row anyway.
        return NewExport("snapshot", 1, snapshot_tables=state.tables)
    if restart is not None:  # reexport
        since = restart.since_us if restart.since_us is not None else state.now_us
        return _reexport_window(state, stream, since, since, state.now_us)
    if last.reexport_unfinished:
        assert last.window_hi_us is not None and last.reexport_until_us is not None
        return _reexport_window(
            state,
            stream,
            last.since_us or last.window_hi_us,
            last.window_hi_us,
            last.reexport_until_us,
        )
    if state.max_claimed_key > last.hwm_to:
        return NewExport("incremental", stream, claim=False, snapshot_tables=state.unsnapshotted)
    if state.oldest_pending_us is None and not state.unsnapshotted and not state.shape_changes:
        return None
    until = (
        state.oldest_pending_us + state.max_span_us if state.oldest_pending_us is not None else None
    )
    return NewExport(
        "incremental", stream, claim_until_us=until, snapshot_tables=state.unsnapshotted
    )


def _reexport_window(state: StreamState, stream: int, since: int, lo: int, until: int) -> NewExport:
    hi = min(lo + state.max_span_us, until)
    return NewExport(
        "incremental",
        stream,
        "reexport",
        since,
        claim_until_us=hi,
        window_lo_us=lo,
        window_hi_us=hi,
        reexport_until_us=until,
        snapshot_tables=state.unsnapshotted,
    )
