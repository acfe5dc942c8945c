"""SQLite as a source: a local file, one writer at a time, values of any type in any column.

- Sessions: pysqlite's own transaction handling (a lazy BEGIN, none for DDL) is turned off,
  so DDL is transactional and a writer can take the write lock at BEGIN (BEGIN IMMEDIATE:
  a read-then-write transaction never fails half-way on a lock upgrade).
- Locks: no sessions to hold one; a job's lock is a file lock beside the database.
- Reading: CSV lines are built by SQLite's own SQL (or its shell); date-times are ISO text.
- Storage classes: any column may hold a value of any class. A value whose class the
  column's exported type cannot carry exactly (a blob in a TEXT column, a text in an
  INTEGER one, a number in a column without a declared type) makes the SQL that reads it
  fail (`guarded`), and the export is refused in one line naming the row
  (`explain_failed_read`); docs/types.md, "SQLite storage classes".
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

from tidegate.clients import ClientCannotWrite
from tidegate.errors import ConfigError, SourceError
from tidegate.model import TimeKind
from tidegate.sources.base import CsvPath, ReadColumn, SourceDialect

BUSY_TIMEOUT_SECONDS = 60.0
# What the SQL evaluates for a value it must not write: SQLite has no RAISE outside
# triggers, and json() of a non-JSON text fails the statement with "malformed JSON",
# evaluated only when the CASE reaches it.
FAIL = "json('tidegate: ' || typeof({c}))"
_FAILED = "malformed JSON"


def storage_classes(portable: str) -> tuple[str, ...]:
    """The storage classes a column's values may have when it is exported as `portable`
    (NULL aside): the classes that type's written form holds exactly."""
    if portable == "binary":
        return ("blob",)
    if portable in ("boolean", "smallint", "integer", "bigint"):
        return ("integer",)
    if portable == "float":
        return ("real", "integer")
    if portable.startswith("numeric"):
        # A number too long for a REAL stays text; a loader refuses text that is no number.
        return ("integer", "real", "text")
    if portable in ("timestamp", "timestamptz", "date", "time", "timetz"):
        return ("text", "integer", "real")  # ISO text, or a Unix or Julian day number
    return ("text",)


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
        checked = guarded(column, self.portable_type(reflected["type"]))
        if column.name in key:
            return checked.label(column.name)
        return sa.func.coalesce(checked, "").label(column.name)

    def explain_failed_read(
        self,
        conn: Connection,
        table: sa.TableClause,
        columns: Sequence[ReadColumn],
        key: Sequence[str],
        error: BaseException,
    ) -> Exception | None:
        """The refusal behind a read that `guarded` SQL failed; a text holding NUL, which
        the sqlite3 program cannot print, is `ClientCannotWrite` (read again in-process)."""
        if _FAILED not in str(error):
            return None
        for column in columns:
            found = _stray(conn, table, column, key)
            if found is not None:
                return found
        for column in columns:
            if "text" in storage_classes(column.portable) and _has_nul(conn, table, column):
                return ClientCannotWrite(
                    f"table {table.name} column {column.name} holds a NUL character, "
                    "which the sqlite3 program cannot write"
                )
        return None


def guarded(column: sa.ColumnElement[Any], portable: str) -> sa.ColumnElement[Any]:
    """The column, or a failure of the statement at a value of a storage class that
    `portable` cannot carry."""
    allowed = (*storage_classes(portable), "null")
    fail = sa.func.json(sa.literal("tidegate: ") + sa.func.typeof(column))
    return sa.case((sa.func.typeof(column).in_(allowed), column), else_=fail)


def guarded_sql(c: str, portable: str, written: Mapping[str, str]) -> str:
    """`CASE typeof(c) WHEN class THEN written[class] … ELSE <failure> END` in SQL text,
    over the classes `portable` allows (and NULL); `c` is the quoted column."""
    allowed = (*storage_classes(portable), "null")
    whens = " ".join(f"WHEN '{klass}' THEN {written[klass]}" for klass in allowed)
    return f"CASE typeof({c}) {whens} ELSE {FAIL.format(c=c)} END"


def _stray(
    conn: Connection, table: sa.TableClause, column: ReadColumn, key: Sequence[str]
) -> SourceError | None:
    value: sa.ColumnClause[Any] = sa.column(column.name)
    allowed = (*storage_classes(column.portable), "null")
    found = conn.execute(
        sa.select(sa.func.typeof(value), *[sa.column(k) for k in key])
        .select_from(table)
        .where(sa.func.typeof(value).not_in(allowed))
        .limit(1)
    ).first()
    if found is None:
        return None
    klass, *values = found
    untyped = column.sql_type in ("", "NullType")  # SQLAlchemy's name for no type
    declared = "no declared type" if untyped else column.sql_type
    at = ", ".join(f"{k}={v!r}" for k, v in zip(key, values, strict=True))
    holds = "an integer" if klass == "integer" else f"a {klass}"
    return SourceError(
        f"table {table.name} column {column.name} ({declared}) holds {holds} at {at}: "
        f"it is exported as {column.portable}, which cannot hold {holds} exactly",
        f"store the value as {' or '.join(storage_classes(column.portable))} "
        f"(for example UPDATE … SET {column.name} = CAST({column.name} AS …)), or declare "
        'the column with the type it holds; docs/types.md, "SQLite storage classes"',
    )


def _has_nul(conn: Connection, table: sa.TableClause, column: ReadColumn) -> bool:
    value: sa.ColumnClause[Any] = sa.column(column.name)
    nul = sa.func.instr(value, sa.func.char(0)) > 0
    query = sa.select(sa.literal(1)).select_from(table).where(nul).limit(1)
    return conn.execute(query).first() is not None
