"""Change capture on SQLite: three triggers per table, one per kind of change."""

from __future__ import annotations

from typing import ClassVar

from tidegate.capture.base import TriggerCapture


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
