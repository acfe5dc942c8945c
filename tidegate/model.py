"""Plain data shared by every layer: what a run, a change and a claim are.

Frozen dataclasses, fixed vocabularies and the time representation; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

JobName = Literal["init", "claim", "tables", "initial", "ongoing", "load"]
"""A job is a kind of run. Two processes never run the same job at once."""

RunStatus = Literal["running", "succeeded", "failed", "abandoned"]
"""`abandoned` marks a run whose process died; the next run of its job finds it so."""

ChangeOp = Literal["I", "U", "D", "T"]  # T: the table was truncated (key [])
"""Insert, update, delete. An update that changes the key is captured as D(old) + U(new)."""


@dataclass(frozen=True)
class RunRecord:
    """One row of run history."""

    job: JobName
    run_number: int
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    rows: int = 0
    files: int = 0
    bytes: int = 0
    error: str = ""

    @property
    def duration_seconds(self) -> float | None:
        """Wall time of a finished run."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Change:
    """One captured change, as claimed under an audit key.

    Attributes:
        change_id: capture order; only meaningful between changes of the same row.
        audit_key: the claim that stamped it.
        table: source table name.
        op: I, U or D.
        key: primary-key values in key-column order, as JSON gave them back.
        captured_at: when the writer's trigger fired (UTC).
        data_at: the change's data time: the row's time column, else ``captured_at``.
    """

    change_id: int
    audit_key: int
    table: str
    op: ChangeOp
    key: tuple[object, ...]
    captured_at: datetime
    data_at: datetime


@dataclass(frozen=True)
class Claim:
    """The result of one claim: committed changes stamped with one new audit key."""

    audit_key: int
    changes: int
    claimed_at: datetime


TimeKind = Literal["timestamptz", "timestamp", "date", "sqlite"]
"""How a time column stores time: with a zone, naive (in [source] timezone), a date, or
SQLite's untyped ISO-8601 text / unix seconds."""


@dataclass(frozen=True)
class TimeColumn:
    """The column holding a table's data time (`[tables] time_columns`)."""

    name: str
    kind: TimeKind
    timezone: str


@dataclass(frozen=True)
class CapturedTable:
    """A source table with change capture installed."""

    table_id: int
    name: str
    key_columns: tuple[str, ...]
    time: TimeColumn | None = None


@dataclass(frozen=True)
class InitReport:
    """What `init` did."""

    installed: tuple[str, ...] = field(default=())
    refreshed: tuple[str, ...] = field(default=())
    removed: tuple[str, ...] = field(default=())
    control_tables_created: bool = False
    keyless: tuple[str, ...] = field(default=())  # selected, no key: not captured


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since 1970 UTC: how tidegate stores every time of its own, exactly."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(microseconds: int) -> datetime:
    """The UTC datetime of a stored time."""
    return EPOCH + timedelta(microseconds=microseconds)


def now_us() -> int:
    """The current time in microseconds since 1970 UTC."""
    return to_us(datetime.now(UTC))
