"""`tidegate init` and `tidegate uninstall`: control tables and capture triggers."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import exc

from tidegate import control
from tidegate.capture.registry import capture_for, captured_tables, register, unregister
from tidegate.config import TablesConfig
from tidegate.db import (
    Database,
    column_types,
    database_error,
    list_tables,
    primary_key,
)
from tidegate.errors import CaptureError
from tidegate.formats.tableschema import MAX_NAME, portable_name
from tidegate.model import CapturedTable, InitReport, TimeColumn
from tidegate.runs import require_installed


def plan_tables(db: Database, tables: TablesConfig, timezone: str) -> list[CapturedTable]:
    """The selected source tables with their key (the primary key, or the columns
    `[tables] keys` names; none for a keyless table, which is exported whole whenever it
    changed) and time columns, checked before anything changes.

    Table ids are 0 here; `install` assigns them.

    Raises:
        CaptureError: no table is selected, a `[tables] keys` entry is wrong, or a time
            column is missing or not a time.
    """
    names = [name for name in list_tables(db) if tables.selects(name)]
    if not names:
        raise CaptureError(
            f"{db.key_label('url')}: [tables] include/exclude select no table in {db.display_url}",
            "check [tables] include and exclude, and [source] schema",
        )
    for name in names:
        _check_names(db, name)
    keys = _table_keys(db, tables, names)
    return [
        CapturedTable(0, name, key, _time_column(db, tables, timezone, name))
        for name, key in keys.items()
    ]


def _table_keys(db: Database, tables: TablesConfig, names: list[str]) -> dict[str, tuple[str, ...]]:
    """Each table's key: its primary key, else the columns `[tables] keys` names, else ()."""
    keys = {name: primary_key(db, name) for name in names}
    for table, columns in tables.keys.items():
        where = f"{db.origin}: [tables] keys.{table}"
        if table not in keys:
            raise CaptureError(
                f"{where}: table {table!r} is not exported", "remove it, or include the table"
            )
        if keys[table]:
            raise CaptureError(
                f"{where}: table {table!r} has a primary key ({', '.join(keys[table])})",
                "remove it from [tables] keys: its primary key is its key",
            )
        missing = [c for c in columns if c not in column_types(db, table)]
        if missing:
            raise CaptureError(
                f"{where}: table {table!r} has no column {missing[0]!r}",
                f"columns: {', '.join(column_types(db, table))}",
            )
        keys[table] = tuple(columns)
    return keys


def uncaptured(db: Database, tables: TablesConfig) -> list[str]:
    """Tables `[tables] include` selects that have no capture yet (created after `init`):
    `status` and every table export name them until `init` captures them."""
    with db.engine.connect() as conn:
        captured = captured_tables(db, conn) if control.installed(db, conn) else {}
    return [name for name in list_tables(db) if tables.selects(name) and name not in captured]


def _check_names(db: Database, table: str) -> None:
    """Refuse a table whose name, or a column's, export files cannot carry: a control
    character, or more than MAX_NAME characters (the loader refuses both)."""
    hint = f"rename it, or leave the table out with [tables] exclude = [{table!r}]"
    if not portable_name(table):
        raise CaptureError(
            f"table {table!r}: its name has a control character or more than {MAX_NAME} "
            "characters, which export files cannot carry",
            hint,
        )
    for column in column_types(db, table):
        if not portable_name(column):
            raise CaptureError(
                f"table {table!r}: column {column!r} has a control character or more than "
                f"{MAX_NAME} characters in its name, which export files cannot carry",
                hint,
            )


def _time_column(
    db: Database, tables: TablesConfig, timezone: str, table: str
) -> TimeColumn | None:
    return time_column(db, table, tables.time_columns.get(table), timezone)


def time_column(db: Database, table: str, column: str | None, timezone: str) -> TimeColumn | None:
    """The `[tables] time_columns` column of a table, checked (None: the table has none).

    Raises:
        CaptureError: the table has no such column, or it holds no date or time.
    """
    if column is None:
        return None
    where = f"{db.origin}: [tables] time_columns.{table}"
    types = column_types(db, table)
    if column not in types:
        raise CaptureError(
            f"{where}: table {table!r} has no column {column!r}", f"columns: {', '.join(types)}"
        )
    kind = db.dialect.time_kind(types[column])
    if kind is None:
        raise CaptureError(
            f"{where}: column {column!r} is not a date or timestamp",
            "name a DATE, TIMESTAMP or DATETIME column",
        )
    return TimeColumn(column, kind, timezone)


def _unknown_time_tables(db: Database, tables: TablesConfig, planned: list[CapturedTable]) -> None:
    captured = {table.name for table in planned}
    for table in tables.time_columns:
        if table not in captured:
            raise CaptureError(
                f"{db.origin}: [tables] time_columns.{table}: table {table!r} is not exported",
                "remove it from time_columns, or include the table",
            )


def install(db: Database, tables: TablesConfig, timezone: str = "UTC") -> InitReport:
    """Create the control tables and install capture on every selected table.

    Safe to run again: triggers are replaced, newly selected tables get capture, and
    tables no longer selected (or dropped) lose it. Nothing changes when a check fails.

    Args:
        db: the source database.
        tables: the table selection and time columns (``[tables]``).
        timezone: the zone of naive time columns (``[source] timezone``).

    Raises:
        CaptureError: a selected table cannot be captured.
        SourceError: the database refused a statement.
    """
    with db.engine.connect() as conn:
        if control.installed(db, conn):
            require_installed(db, conn)  # refuses control tables of another version
    planned = plan_tables(db, tables, timezone)
    _unknown_time_tables(db, tables, planned)
    capture = capture_for(db)
    try:
        with db.begin(write=True) as conn:
            db.dialect.start_ddl(conn)
            created = control.create(db, conn)
            existing = captured_tables(db, conn)
            next_id = max((table.table_id for table in existing.values()), default=0) + 1
            installed: list[str] = []
            refreshed: list[str] = []
            for plan in planned:
                known = existing.get(plan.name)
                table = replace(plan, table_id=known.table_id if known else next_id)
                if known is None:
                    next_id += 1
                if table.time is not None:
                    capture.check_time_column(conn, table.name, table.time)
                capture.install(conn, table)
                register(db, conn, table, new=known is None)
                (refreshed if known else installed).append(table.name)
            selected = {table.name for table in planned}
            removed = [name for name in existing if name not in selected]
            for name in removed:
                capture.remove(conn, existing[name])
                unregister(db, conn, existing[name])
    except exc.DBAPIError as error:
        raise database_error(db, error, "installing change capture") from None
    # Without a primary key or `[tables] keys`: exported whole whenever they changed.
    keyless = tuple(table.name for table in planned if not table.key_columns)
    return InitReport(tuple(installed), tuple(refreshed), tuple(removed), created, keyless)


def uninstall(db: Database) -> list[str]:
    """Remove every trigger, function and control table tidegate created.

    Returns:
        The tables whose capture was removed.
    """
    capture = capture_for(db)
    try:
        with db.begin(write=True) as conn:
            removed = []
            if control.installed(db, conn):
                for table in captured_tables(db, conn).values():
                    removed.append(table.name)
            capture.remove_leftovers(conn)
            control.drop(db, conn)
    except exc.DBAPIError as error:
        raise database_error(db, error, "removing change capture") from None
    return sorted(removed)
