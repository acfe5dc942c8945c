"""What every dialect's change capture does, and the parts they share.

A capture installs triggers that append one row to ``tidegate_pending`` per row change,
inside the writer's transaction. The SQL lives in ``sql/<dialect>/*.sql`` files, one
statement each; this module fills in their parameters, with every identifier quoted by
SQLAlchemy, and runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import control
from tidegate.db import Database
from tidegate.model import CapturedTable, TimeColumn
from tidegate.sources.base import read_sql

if TYPE_CHECKING:
    from tidegate.capture.ticks import Queue


def sql_file(dialect: str, name: str) -> str:
    """The statement in ``sql/<dialect>/<name>.sql``, without its header comment."""
    return read_sql("tidegate.capture", dialect, name)


def run_ddl(conn: Connection, statement: str) -> None:
    """Run one DDL statement exactly as written.

    Without parameters SQLAlchemy hands the text to the driver untouched, so a "%" or ":"
    inside a quoted identifier is never taken for a placeholder.
    """
    conn.exec_driver_sql(statement)


class TriggerCapture:
    """Trigger-based capture for one database; subclasses give the dialect's details.

    Attributes:
        dialect: the folder under sql/ holding this dialect's statements.
        key_function: SQL function building a JSON array from the key columns.
        now_us: SQL expression for the current time in microseconds since 1970 UTC.
        trigger_files: statement file -> trigger name suffix, for dialects with one trigger
            per event.
        drop_before_create: the dialect has no CREATE OR REPLACE TRIGGER; install drops
            first, in the same transaction.
    """

    dialect = ""
    key_function = ""
    now_us = ""
    trigger_files: ClassVar[dict[str, str]] = {}
    drop_before_create = False

    def __init__(self, db: Database) -> None:
        self.db = db

    def trigger_names(self, table: CapturedTable) -> list[str]:
        """Names of the triggers installed for a table."""
        return [f"tidegate_cap_{table.table_id}_{suffix}" for suffix in self.trigger_files.values()]

    def key_expression(self, row: str, table: CapturedTable) -> str:
        """JSON array of the key columns of NEW or OLD, in key order."""
        columns = ", ".join(f"{row}.{self.db.quote(column)}" for column in table.key_columns)
        return f"{self.key_function}({columns})"

    def parameters(self, table: CapturedTable) -> dict[str, str]:
        """Values for the {placeholders} of the statement files."""
        return {
            "table": self.db.qualified(table.name),
            "pending": self.db.qualified(control.pending.name),
            "change": self.db.qualified(control.change.name),
            "table_id": str(int(table.table_id)),
            "new_key": self.key_expression("NEW", table),
            "old_key": self.key_expression("OLD", table),
            "now_us": self.now_us,
            "new_data": self.data_expression("NEW", table),
            "old_data": self.data_expression("OLD", table),
        }

    def data_expression(self, row: str, table: CapturedTable) -> str:
        """The change's data time in microseconds: the time column of NEW or OLD when the
        table has one and it is not NULL, else the capture time."""
        if table.time is None:
            return self.now_us
        column = f"{row}.{self.db.quote(table.time.name)}"
        return f"COALESCE({self.time_expression(column, table.time)}, {self.now_us})"

    def time_expression(self, column: str, time: TimeColumn) -> str:
        """SQL for a time column's value in microseconds since 1970 UTC."""
        raise NotImplementedError

    def check_time_column(self, conn: Connection, table: str, time: TimeColumn) -> None:
        """Raise CaptureError when this database cannot compute the column's data time."""

    def render(self, name: str, **parameters: str) -> str:
        """A statement file with its parameters filled in."""
        return sql_file(self.dialect, name).format(**parameters)

    def install(self, conn: Connection, table: CapturedTable) -> None:
        """Install or replace the capture triggers of one table."""
        parameters = self.parameters(table)
        for name, suffix in self.trigger_files.items():
            trigger = self.db.quote(f"tidegate_cap_{table.table_id}_{suffix}")
            if self.drop_before_create:
                run_ddl(conn, self.render("drop_trigger", trigger=trigger))
            run_ddl(conn, self.render(name, trigger=trigger, **parameters))

    def remove(self, conn: Connection, table: CapturedTable) -> None:
        """Remove the capture triggers of one table; absent ones are fine."""
        for trigger in self.trigger_names(table):
            run_ddl(conn, self.render("drop_trigger", trigger=self.db.quote(trigger)))

    entity_files: ClassVar[dict[str, str]] = {
        "entity_insert": "i",
        "entity_update": "u",
        "entity_delete": "d",
    }

    def entity_name(self, entity_id: int, index: int) -> str:
        """The trigger (or function) name of one table of an entity; `index` is the
        table's place in the entity (0 for the root)."""
        return f"tidegate_ent_{int(entity_id)}_{int(index)}"

    def entity_parameters(
        self, entity_id: int, table: str, key_columns: tuple[str, ...]
    ) -> dict[str, str]:
        """Values for the {placeholders} of the entity statement files."""

        def key(row: str) -> str:
            columns = ", ".join(f"{row}.{self.db.quote(c)}" for c in key_columns)
            return f"{self.key_function}({columns})"

        return {
            "table": self.db.qualified(table),
            "queue": self.db.qualified(control.entity_pending.name),
            "entity_id": str(int(entity_id)),
            "new_key": key("NEW"),
            "old_key": key("OLD"),
            "now_us": self.now_us,
        }

    def install_entity(
        self, conn: Connection, entity_id: int, index: int, table: str, key_columns: tuple[str, ...]
    ) -> None:
        """Install or replace the capture that queues an entity's root key on changes to
        one of its tables."""
        parameters = self.entity_parameters(entity_id, table, key_columns)
        for name, suffix in self.entity_files.items():
            trigger = self.db.quote(f"{self.entity_name(entity_id, index)}_{suffix}")
            if self.drop_before_create:
                run_ddl(conn, self.render("drop_trigger", trigger=trigger))
            run_ddl(conn, self.render(name, trigger=trigger, **parameters))

    def remove_entity(self, conn: Connection, entity_id: int, index: int, table: str) -> None:
        """Remove that capture; absent triggers are fine."""
        for suffix in self.entity_files.values():
            trigger = self.db.quote(f"{self.entity_name(entity_id, index)}_{suffix}")
            run_ddl(conn, self.render("drop_trigger", trigger=trigger))

    def leftover_triggers(self, conn: Connection) -> list[tuple[str, str]]:
        """(trigger, table) of every tidegate trigger found in the database catalog."""
        rows = conn.execute(
            sa.text(sql_file(self.dialect, "find_triggers")), {"schema": self.db.schema}
        )
        return [(row.trigger_name, row.table_name) for row in rows]

    def remove_leftovers(self, conn: Connection) -> None:
        """Remove tidegate triggers the control tables do not know about (uninstall)."""
        for trigger, _table in self.leftover_triggers(conn):
            run_ddl(conn, self.render("drop_trigger", trigger=self.db.quote(trigger)))

    def delete_claimed(self, conn: Connection, audit_key: int, queue: Queue) -> int:
        """Delete from a queue's pending table the entries just copied under ``audit_key``.

        Returns:
            How many were deleted: the size of the claim. (DBAPI drivers report row counts
            of DELETE reliably, unlike those of INSERT … SELECT.)
        """
        identity = queue.pending.c[queue.id_column]
        claimed = sa.select(queue.claimed.c[queue.id_column]).where(
            queue.claimed.c.audit_key == audit_key
        )
        return conn.execute(queue.pending.delete().where(identity.in_(claimed))).rowcount
