"""MySQL and MariaDB as a source.

- Sessions: the time zone is UTC, so a TIMESTAMP (stored in UTC) reads back as stored.
- Locks: `GET_LOCK`, a name per lock in one namespace for the whole server.
- Reading: rows through a server-side cursor, formatted in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tidegate.model import TimeKind
from tidegate.sources.base import ServerLock, SourceDialect

_UNSIGNED = {
    "TINYINT": "smallint",
    "SMALLINT": "integer",
    "MEDIUMINT": "integer",
    "INTEGER": "bigint",
}
"""The portable type of each unsigned integer: the narrowest signed one holding its values."""


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

    def portable_type(self, column_type: Any) -> str:
        from sqlalchemy.dialects import mysql

        if isinstance(column_type, sa.Integer) and getattr(column_type, "unsigned", False):
            # The next wider signed type holds every value; BIGINT UNSIGNED needs 20 digits.
            return _UNSIGNED.get(type(column_type).__name__, "numeric(20,0)")
        if isinstance(column_type, mysql.MEDIUMINT):
            return "integer"
        if isinstance(column_type, mysql.BIT):
            return f"bit({column_type.length or 1})"
        if isinstance(column_type, mysql.YEAR):
            return "smallint"
        if isinstance(column_type, sa.Time):
            return "duration"  # from -838:59:59 to 838:59:59, not a time of day
        if isinstance(column_type, mysql.SET):
            return f"varchar({sum(map(len, column_type.values)) + len(column_type.values)})"
        return super().portable_type(column_type)

    def time_kind(self, column_type: Any) -> TimeKind | None:
        if isinstance(column_type, sa.DateTime) and type(column_type).__name__ == "TIMESTAMP":
            return "timestamptz"  # a TIMESTAMP is stored in UTC
        return super().time_kind(column_type)

    def csv_column(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        shaped = _shaped(column, column.type)
        return (column if shaped is None else shaped).label(column.name)

    def entity_column(
        self, column: sa.ColumnClause[Any], reflected: Any, zone: tzinfo, key: Sequence[str]
    ) -> sa.ColumnElement[Any]:
        shaped = None if column.name in key else _shaped(column, reflected["type"])
        if shaped is not None:
            return shaped.label(column.name)
        return super().entity_column(column, reflected, zone, key)

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


def _shaped(column: sa.ColumnElement[Any], kind: Any) -> sa.ColumnElement[Any] | None:
    """A value the driver would read inexactly, shaped by the server; None for others."""
    from sqlalchemy.dialects import mysql

    if isinstance(kind, sa.Float) and not isinstance(kind, mysql.DOUBLE):
        # A FLOAT as its exact double: the driver reads FLOAT as 6 digits of text.
        return sa.cast(column, mysql.DOUBLE())
    if isinstance(kind, mysql.BIT):
        # The bits as text of 0 and 1, as wide as the column (the driver reads bytes).
        return sa.func.lpad(sa.func.bin(column), kind.length or 1, "0")
    return None
