"""Which rows of a table an export holds, as SQLAlchemy Core queries for every dialect.

An export holds, per table, either every row (a snapshot, optionally only rows whose time
column is at or after a date), or the *current* row of every key with a selected change:
changes claimed in the export's audit-key range, plus, for a re-export, changes whose data
time falls in its window. Keys whose row no longer exists are the table's deleted keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidegate import control
from tidegate.db import Database
from tidegate.tables.schema import TableSpec


@dataclass(frozen=True)
class Selection:
    """The changes (or rows) one export covers.

    Attributes:
        audit_from, audit_to: changes with audit_from < audit key <= audit_to.
        window_lo_us, window_hi_us: also changes with data time in [lo, hi) and audit key
            <= audit_to (a re-export).
        whole: tables exported whole, every row.
        since: for tables exported whole, only rows whose time column is at or after this
            (naive, in the source's zone, for naive columns).
        time_columns: table -> time column, for `since`.
    """

    audit_from: int
    audit_to: int
    window_lo_us: int | None = None
    window_hi_us: int | None = None
    whole: frozenset[str] = frozenset()
    since: datetime | None = None
    time_columns: tuple[tuple[str, str], ...] = ()

    def change_filter(self) -> sa.ColumnElement[bool]:
        """The selected rows of tidegate_change (all tables)."""
        c = control.change.c
        in_range = sa.and_(c.audit_key > self.audit_from, c.audit_key <= self.audit_to)
        if self.window_lo_us is None or self.window_hi_us is None:
            return in_range
        in_window = sa.and_(
            c.data_us >= self.window_lo_us,
            c.data_us < self.window_hi_us,
            c.audit_key <= self.audit_to,
        )
        return sa.or_(in_range, in_window)


def key_element(db: Database, index: int, column_type: Any) -> sa.ColumnElement[Any]:
    """Element `index` of a captured key (a JSON array), typed like the key column, so the
    table's primary-key index serves the lookup."""
    return db.dialect.key_element(control.change.c.pk, index, column_type)


def _changed_keys(db: Database, spec: TableSpec, selection: Selection) -> sa.Select[Any]:
    table = spec.table
    elements = [key_element(db, i, table.c[name].type) for i, name in enumerate(spec.primary_key)]
    return (
        sa.select(*elements)
        .where(control.change.c.table_id == spec.table_id, selection.change_filter())
        .distinct()
    )


def _key_columns(spec: TableSpec) -> sa.ColumnElement[Any]:
    columns = [spec.table.c[name] for name in spec.primary_key]
    return columns[0] if len(columns) == 1 else sa.tuple_(*columns)


def row_filter(
    db: Database, spec: TableSpec, selection: Selection
) -> sa.ColumnElement[bool] | None:
    """WHERE clause on the source table for its exported rows; None for every row."""
    if spec.name in selection.whole:
        column = dict(selection.time_columns).get(spec.name)
        if selection.since is not None and column is not None:
            return spec.table.c[column] >= selection.since
        return None
    return _key_columns(spec).in_(_changed_keys(db, spec, selection))


def deleted_keys(db: Database, spec: TableSpec, selection: Selection) -> sa.Select[Any]:
    """Keys with a selected change whose row no longer exists, labelled as key columns."""
    table = spec.table
    elements = [key_element(db, i, table.c[name].type) for i, name in enumerate(spec.primary_key)]
    alive = (
        sa.select(sa.literal(1))
        .select_from(table)
        .where(
            *[
                table.c[name] == element
                for name, element in zip(spec.primary_key, elements, strict=True)
            ]
        )
    )
    labelled = [
        element.label(name) for name, element in zip(spec.primary_key, elements, strict=True)
    ]
    return (
        sa.select(*labelled)
        .where(
            control.change.c.table_id == spec.table_id, selection.change_filter(), ~alive.exists()
        )
        .distinct()
    )


def tables_with_changes(db: Database, conn: sa.Connection, selection: Selection) -> set[int]:
    """Ids of the tables that have a selected change."""
    query = sa.select(control.change.c.table_id).where(selection.change_filter()).distinct()
    return set(control.bind(db, conn).execute(query).scalars())


def change_counts(db: Database, conn: sa.Connection, selection: Selection) -> dict[int, int]:
    """The number of selected changes of each table that has one, by table id."""
    c = control.change.c
    query = sa.select(c.table_id, sa.func.count()).where(selection.change_filter())
    rows = control.bind(db, conn).execute(query.group_by(c.table_id))
    return {int(table_id): int(count) for table_id, count in rows}


def truncated_tables(db: Database, conn: sa.Connection, selection: Selection) -> set[int]:
    """Ids of the tables truncated by a selected change (op "T"): exported whole."""
    c = control.change.c
    query = sa.select(c.table_id).where(selection.change_filter(), c.op == "T").distinct()
    return set(control.bind(db, conn).execute(query).scalars())


def data_time_range(
    db: Database, conn: sa.Connection, selection: Selection
) -> tuple[int | None, int | None]:
    """(earliest, latest) data time of the selected changes, in microseconds."""
    c = control.change.c
    query = sa.select(sa.func.min(c.data_us), sa.func.max(c.data_us)).where(
        selection.change_filter()
    )
    low, high = control.bind(db, conn).execute(query).one()
    return low, high
