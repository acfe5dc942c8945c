"""`tidegate init` and `tidegate uninstall`: control tables and capture triggers."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import exc

from tidegate import control
from tidegate.capture.base import run_ddl
from tidegate.capture.registry import capture_for, captured_tables, register, unregister
from tidegate.db import Database, database_error, list_tables, primary_key
from tidegate.errors import CaptureError
from tidegate.model import CapturedTable, InitReport

# How long init waits for a writer's open transaction to release a table before it gives
# up (PostgreSQL); replacing a trigger needs a short exclusive lock on the table.
LOCK_TIMEOUT = "30s"


def plan_tables(db: Database, selects: Callable[[str], bool]) -> dict[str, tuple[str, ...]]:
    """The selected source tables and their key columns, checked before anything changes.

    Raises:
        CaptureError: no table is selected, or a selected table has no primary key.
    """
    names = [name for name in list_tables(db) if selects(name)]
    if not names:
        raise CaptureError(
            f"{db.key_label('url')}: [tables] include/exclude select no table in {db.display_url}",
            "check [tables] include and exclude, and [source] schema",
        )
    keys = {name: primary_key(db, name) for name in names}
    keyless = [name for name, key in keys.items() if not key]
    if keyless:
        more = f" (and {len(keyless) - 1} more)" if len(keyless) > 1 else ""
        raise CaptureError(
            f"table {keyless[0]!r}{more} has no primary key, so its changes cannot be "
            "matched to rows",
            f"add a primary key, or leave it out with [tables] exclude = {keyless!r}",
        )
    return keys


def install(db: Database, selects: Callable[[str], bool]) -> InitReport:
    """Create the control tables and install capture on every selected table.

    Safe to run again: triggers are replaced, newly selected tables get capture, and
    tables no longer selected (or dropped) lose it. Nothing changes when a check fails.

    Args:
        db: the source database.
        selects: the table-selection rule (``[tables] include/exclude``).

    Raises:
        CaptureError: a selected table cannot be captured.
        SourceError: the database refused a statement.
    """
    keys = plan_tables(db, selects)
    capture = capture_for(db)
    try:
        with db.begin(write=True) as conn:
            if db.dialect == "postgresql":
                run_ddl(conn, f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            created = control.create(db, conn)
            existing = captured_tables(db, conn)
            next_id = max((table.table_id for table in existing.values()), default=0) + 1
            installed: list[str] = []
            refreshed: list[str] = []
            for name, key in keys.items():
                known = existing.get(name)
                table = CapturedTable(known.table_id if known else next_id, name, key)
                if known is None:
                    next_id += 1
                capture.install(conn, table)
                register(db, conn, table, new=known is None)
                (refreshed if known else installed).append(name)
            removed = [name for name in existing if name not in keys]
            for name in removed:
                capture.remove(conn, existing[name])
                unregister(db, conn, existing[name])
    except exc.DBAPIError as error:
        raise database_error(db, error, "installing change capture") from None
    return InitReport(tuple(installed), tuple(refreshed), tuple(removed), created)


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
