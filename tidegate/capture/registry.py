"""Which tables have capture installed, and the capture implementation of a database."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.capture.base import TriggerCapture
from tidegate.capture.mysql import MySQLCapture
from tidegate.capture.postgres import PostgresCapture
from tidegate.capture.sqlite import SQLiteCapture
from tidegate.db import Database
from tidegate.model import CapturedTable, now_us

_CAPTURES: dict[str, type[TriggerCapture]] = {
    "sqlite": SQLiteCapture,
    "postgresql": PostgresCapture,
    "mysql": MySQLCapture,
}


def capture_for(db: Database) -> TriggerCapture:
    """The trigger capture for the database's dialect."""
    return _CAPTURES[db.dialect.name](db)


def captured_tables(db: Database, conn: Connection) -> dict[str, CapturedTable]:
    """Table name -> captured table, from tidegate_capture."""
    rows = control.bind(db, conn).execute(sa.select(control.capture))
    return {
        row.table_name: CapturedTable(
            row.table_id, row.table_name, tuple(json.loads(row.key_columns))
        )
        for row in rows
    }


def register(db: Database, conn: Connection, table: CapturedTable, *, new: bool) -> None:
    """Record (or update) a captured table in tidegate_capture."""
    capture = control.capture
    values = {
        "table_name": table.name,
        "key_columns": json.dumps(list(table.key_columns)),
        "installed_us": now_us(),
    }
    conn = control.bind(db, conn)
    if new:
        conn.execute(capture.insert().values(table_id=table.table_id, **values))
    else:
        conn.execute(capture.update().where(capture.c.table_id == table.table_id).values(values))


def unregister(db: Database, conn: Connection, table: CapturedTable) -> None:
    """Forget a captured table and drop its unclaimed changes (nothing will export them)."""
    conn = control.bind(db, conn)
    conn.execute(control.capture.delete().where(control.capture.c.table_id == table.table_id))
    conn.execute(control.pending.delete().where(control.pending.c.table_id == table.table_id))
