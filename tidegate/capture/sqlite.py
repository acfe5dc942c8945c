"""Change capture on SQLite: three triggers per table, one per kind of change."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.engine import Connection

from tidegate.capture.base import TriggerCapture
from tidegate.errors import CaptureError
from tidegate.model import TimeColumn


class SQLiteCapture(TriggerCapture):
    """Triggers `tidegate_cap_<id>_i/u/d`; SQLite serialises writers, so nothing more."""

    dialect = "sqlite"
    key_function = "json_array"
    # julianday('now') is fixed for the whole statement, so every row of one statement
    # gets the same time; it has millisecond precision.
    now_us = "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    trigger_files: ClassVar[dict[str, str]] = {
        "trigger_insert": "i",
        "trigger_update": "u",
        "trigger_delete": "d",
    }
    # Dropped and created in one transaction: SQLite DDL is transactional.
    drop_before_create = True

    def time_expression(self, column: str, time: TimeColumn) -> str:
        # SQLite has no time types: ISO-8601 text is read as UTC, numbers as unix seconds.
        return (
            f"CASE typeof({column}) "
            f"WHEN 'text' THEN CAST((julianday({column}) - 2440587.5) * 86400000000.0 AS INTEGER) "
            f"WHEN 'integer' THEN {column} * 1000000 "
            f"WHEN 'real' THEN CAST({column} * 1000000 AS INTEGER) END"
        )

    def check_time_column(self, conn: Connection, table: str, time: TimeColumn) -> None:
        if time.timezone != "UTC":
            raise CaptureError(
                f"[source] timezone: SQLite has no time zones, so [tables] "
                f"time_columns.{table} can only be read as UTC",
                'set [source] timezone = "UTC", or store the times in UTC',
            )
