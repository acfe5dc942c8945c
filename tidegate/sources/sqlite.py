"""SQLite as a source: a local file, one writer at a time, values of any type in any column.

- Sessions: pysqlite's own transaction handling (a lazy BEGIN, none for DDL) is turned off,
  so DDL is transactional and a writer can take the write lock at BEGIN (BEGIN IMMEDIATE:
  a read-then-write transaction never fails half-way on a lock upgrade).
- Locks: no sessions to hold one; a job's lock is a file lock beside the database.
- Reading: CSV lines are built by SQLite's own SQL (or its shell); date-times are ISO text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from tidegate.errors import ConfigError
from tidegate.model import TimeKind
from tidegate.sources.base import CsvPath, SourceDialect

BUSY_TIMEOUT_SECONDS = 60.0


class SQLiteSource(SourceDialect):
    name = "sqlite"
    csv_path: ClassVar[CsvPath] = "sql_lines"
    times_as_text = True
    entity_shell = "sqlite3"
    write_options: ClassVar[Mapping[str, Any]] = {"tidegate_write": True}
    # One writer at a time: a claim has no open transaction's rows to skip.
    read_committed_options: ClassVar[Mapping[str, Any]] = {"tidegate_write": True}
    snapshot_options: ClassVar[Mapping[str, Any]] = {}  # a read transaction is a snapshot

    def engine_options(self) -> dict[str, Any]:
        return {"pool_pre_ping": True, "connect_args": {"timeout": BUSY_TIMEOUT_SECONDS}}

    def install_hooks(self, engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("tidegate_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def require_exists(self, url: URL, label: str) -> None:
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return
        if not Path(database).is_file():
            raise ConfigError(
                f"{label}: SQLite database file {database!r} does not exist",
                "check the path in the URL: sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db",
            )

    def lock_place(self, url: URL, schema: str | None) -> str:
        database = url.database or ""
        if database and database != ":memory:":
            return os.path.realpath(database)  # every path to one file names one lock
        return super().lock_place(url, schema)

    def portable_type(self, column_type: Any) -> str:
        if isinstance(column_type, sa.Integer):
            return "bigint"  # every SQLite integer is 64-bit, whatever the declaration
        return super().portable_type(column_type)

    def time_kind(self, column_type: Any) -> TimeKind | None:
        return "sqlite"  # SQLite columns have no types; the capture reads the value

    def key_element(
        self, pk: sa.ColumnElement[Any], index: int, column_type: Any
    ) -> sa.ColumnElement[Any]:
        return sa.func.json_extract(pk, f"$[{index}]")  # values keep their JSON type

    def entity_column(
        self, column: sa.ColumnClause[Any], reflected: Any, zone: tzinfo, key: Sequence[str]
    ) -> sa.ColumnElement[Any]:
        # Any type may be in any column, so nothing is trimmed here (`entity_record` checks
        # the written line instead); NULL becomes "" as the format says.
        if column.name in key:
            return column
        return sa.func.coalesce(column, "").label(column.name)
