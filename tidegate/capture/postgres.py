"""Change capture on PostgreSQL: one plpgsql function and one trigger per table."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.capture.base import TriggerCapture, run_ddl, sql_file
from tidegate.model import CapturedTable, TimeColumn


class PostgresCapture(TriggerCapture):
    """Function and trigger `tidegate_cap_<id>`, replaced inside one transaction."""

    dialect = "postgresql"
    key_function = "json_build_array"
    # now() is the writer's transaction start: one time for all changes of a transaction.
    now_us = "(extract(epoch FROM now()) * 1000000)::bigint"

    def time_expression(self, column: str, time: TimeColumn) -> str:
        zone = self.db.literal(time.timezone)
        moment = {
            "timestamptz": column,
            "timestamp": f"({column} AT TIME ZONE {zone})",
            "date": f"({column}::timestamp AT TIME ZONE {zone})",
        }[time.kind]
        return f"(extract(epoch FROM {moment}) * 1000000)::bigint"

    def trigger_names(self, table: CapturedTable) -> list[str]:
        name = f"tidegate_cap_{table.table_id}"
        return [name, f"{name}_truncate"]

    def install(self, conn: Connection, table: CapturedTable) -> None:
        name = f"tidegate_cap_{table.table_id}"
        parameters = self.parameters(table)
        parameters |= self._positions(conn, table.name, table.key_columns)
        function = self.db.qualified(name)
        run_ddl(conn, self._function_body(function, parameters))
        # Drop and create in the caller's transaction: writers never see the table without
        # its trigger (PostgreSQL DDL is transactional).
        trigger = self.db.quote(name)
        truncate = self.db.quote(f"{name}_truncate")
        for drop in (trigger, truncate):
            run_ddl(conn, self.render("drop_trigger", trigger=drop, table=parameters["table"]))
        for create, quoted in (("create_trigger", trigger), ("create_truncate_trigger", truncate)):
            run_ddl(
                conn,
                self.render(create, trigger=quoted, table=parameters["table"], function=function),
            )

    def install_entity(
        self, conn: Connection, entity_id: int, index: int, table: str, key_columns: tuple[str, ...]
    ) -> None:
        name = self.entity_name(entity_id, index)
        parameters = self.entity_parameters(entity_id, table, key_columns)
        parameters |= self._positions(conn, table, key_columns)
        function = self.db.qualified(name)
        run_ddl(conn, self._function_body(function, parameters, "entity_function"))
        trigger = self.db.quote(name)
        run_ddl(conn, self.render("drop_trigger", trigger=trigger, table=parameters["table"]))
        run_ddl(
            conn,
            self.render(
                "create_trigger", trigger=trigger, table=parameters["table"], function=function
            ),
        )

    def remove_entity(self, conn: Connection, entity_id: int, index: int, table: str) -> None:
        self._drop(conn, self.entity_name(entity_id, index), table)

    def _positions(self, conn: Connection, table: str, columns: tuple[str, ...]) -> dict[str, str]:
        """The table's oid and `ARRAY[attnum, …]::int2[]` of its key columns, for the
        capture function's reading by position (see capture_function.sql)."""
        qualified = self.db.qualified(table)
        positions = conn.execute(
            sa.text(sql_file(self.dialect, "key_positions")),
            {"table": qualified, "columns": list(columns)},
        ).scalars()
        oid = conn.execute(sa.text("SELECT CAST(:t AS regclass)::oid"), {"t": qualified}).scalar()
        found = {
            "key_positions": f"ARRAY[{', '.join(str(int(p)) for p in positions)}]::int2[]",
            "table_oid": str(int(oid or 0)),
        }
        for row in ("new", "old"):
            found[f"{row}_key_by_position"] = self.render(
                "key_by_position", row=row.upper(), into=f"{row}_key", **found
            )
        return found

    def _function_body(
        self, function: str, parameters: dict[str, str], template: str = "capture_function"
    ) -> str:
        """CREATE FUNCTION text, dollar-quoted with a tag its body does not contain."""
        dollar = "$$"
        while True:
            body = self.render(template, function=function, dollar=dollar, **parameters)
            # The body holds quoted identifiers, which may themselves contain the tag.
            if body.count(dollar) == 2:
                return body
            dollar = f"$tidegate_{secrets.token_hex(4)}$"

    def remove(self, conn: Connection, table: CapturedTable) -> None:
        name = f"tidegate_cap_{table.table_id}"
        self._drop(conn, name, table.name, also=(f"{name}_truncate",))

    def _drop(self, conn: Connection, name: str, table: str, also: tuple[str, ...] = ()) -> None:
        """Drop a trigger (and the triggers `also` names) and its function."""
        qualified = self.db.qualified(table)
        # A dropped table took its triggers with it, and DROP TRIGGER would fail on it.
        if conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": qualified}).scalar():
            for trigger in (name, *also):
                run_ddl(
                    conn,
                    self.render("drop_trigger", trigger=self.db.quote(trigger), table=qualified),
                )
        run_ddl(conn, self.render("drop_function", function=self.db.qualified(name)))

    def remove_leftovers(self, conn: Connection) -> None:
        for trigger, table in self.leftover_triggers(conn):
            run_ddl(
                conn,
                self.render(
                    "drop_trigger", trigger=self.db.quote(trigger), table=self.db.qualified(table)
                ),
            )
        functions = conn.execute(
            sa.text(sql_file(self.dialect, "find_functions")), {"schema": self.db.schema}
        )
        for (function,) in functions.all():
            run_ddl(conn, self.render("drop_function", function=self.db.qualified(function)))
