"""MySQL and MariaDB as a source.

- Sessions: the time zone is UTC, so a TIMESTAMP (stored in UTC) reads back as stored.
- Locks: `GET_LOCK`, a name per lock in one namespace for the whole server.
- Reading: rows through a server-side cursor, formatted in Python.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tidegate.model import TimeKind
from tidegate.sources.base import ServerLock, SourceDialect


class MySQLSource(SourceDialect):
    name = "mysql"
    server_lock = ServerLock(
        take="SELECT GET_LOCK(:name, 0)",
        release="SELECT RELEASE_LOCK(:name)",
        held="SELECT IS_USED_LOCK(:name) = CONNECTION_ID()",
    )

    def install_hooks(self, engine: Engine) -> None:
        # tidegate's own timestamps are integers, but reflection and any TIMESTAMP it reads
        # must not depend on the server's or the session's local time zone.
        @event.listens_for(engine, "connect")
        def _utc_session(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")

    def time_kind(self, column_type: Any) -> TimeKind | None:
        if isinstance(column_type, sa.DateTime) and type(column_type).__name__ == "TIMESTAMP":
            return "timestamptz"  # a TIMESTAMP is stored in UTC
        return super().time_kind(column_type)

    def key_element(
        self, pk: sa.ColumnElement[Any], index: int, column_type: Any
    ) -> sa.ColumnElement[Any]:
        from sqlalchemy.dialects import mysql

        text = sa.func.json_value(pk, f"$[{index}]")
        if isinstance(column_type, sa.String):
            return text  # a CAST to CHAR would bring the connection's collation along
        if isinstance(column_type, sa.DateTime):
            return sa.cast(text, mysql.DATETIME(fsp=6))
        return sa.cast(text, column_type)
