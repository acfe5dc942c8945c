"""Change capture on MySQL and MariaDB: three triggers per table, one per kind of change."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.capture.base import TriggerCapture, sql_file
from tidegate.errors import CaptureError
from tidegate.model import TimeColumn

if TYPE_CHECKING:
    from tidegate.capture.ticks import Queue


class MySQLCapture(TriggerCapture):
    """Triggers `tidegate_cap_<id>_i/u/d`, replaced atomically with CREATE OR REPLACE."""

    dialect = "mysql"
    key_function = "JSON_ARRAY"
    # The difference of two UTC wall-clock times, so the session's time zone (and its
    # daylight-saving gaps) cannot shift it.
    now_us = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
    trigger_files: ClassVar[dict[str, str]] = {
        "trigger_insert": "i",
        "trigger_update": "u",
        "trigger_delete": "d",
    }

    def time_expression(self, column: str, time: TimeColumn) -> str:
        if time.kind == "timestamptz":  # TIMESTAMP is stored in UTC: no zone to apply
            return f"CAST(UNIX_TIMESTAMP({column}) * 1000000 AS SIGNED)"
        if time.timezone != "UTC":
            column = f"CONVERT_TZ({column}, {self.db.literal(time.timezone)}, '+00:00')"
        return f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {column})"

    def check_time_column(self, conn: Connection, table: str, time: TimeColumn) -> None:
        if time.kind == "timestamptz" or time.timezone == "UTC":
            return
        converted = conn.execute(
            sa.text("SELECT CONVERT_TZ('2000-01-01 00:00:00', :zone, '+00:00')"),
            {"zone": time.timezone},
        ).scalar()
        if converted is None:
            raise CaptureError(
                f"[source] timezone: MySQL/MariaDB does not know the zone {time.timezone!r}, "
                f"needed for [tables] time_columns.{table}",
                "load the server's time zone tables (mariadb-tzinfo-to-sql /usr/share/zoneinfo "
                "| mariadb mysql), or use a TIMESTAMP column",
            )

    def delete_claimed(self, conn: Connection, audit_key: int, queue: Queue) -> int:
        """Delete the claimed entries by primary-key lookups only (see claim_delete.sql)."""
        statement = sql_file(self.dialect, "claim_delete").format(
            pending=self.db.quote(queue.pending.name),
            claimed=self.db.quote(queue.claimed.name),
            id=self.db.quote(queue.id_column),
        )
        return conn.execute(sa.text(statement), {"audit_key": audit_key}).rowcount
