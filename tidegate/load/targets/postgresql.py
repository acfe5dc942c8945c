"""PostgreSQL as a target: `COPY` straight from the zip member, schemas, advisory locks.

- A table exported whole (a snapshot) is emptied, then `COPY`ed from the member into the
  table itself: the server parses and types every value (an empty field in a NOT NULL text
  column is the empty string).
- Otherwise the member is `COPY`ed into a temporary text table and merged with `INSERT …
  SELECT <conversions> … ON CONFLICT (key) DO UPDATE`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.formats.manifest import TableEntry
from tidegate.formats.tableschema import TableSchema, base_type
from tidegate.load import staging
from tidegate.load.archive import ExportArchive
from tidegate.load.targets.base import Parse, TargetDialect
from tidegate.sources.postgresql import PostgresSource

PARTITIONS = 8
CHARACTER_NOT_IN_REPERTOIRE = "22021"  # SQLSTATE of a NUL in text


class PostgresTarget(TargetDialect):
    name = "postgresql"
    load_lock = PostgresSource.server_lock  # the job locks' statements, another name
    place_sql = "SELECT current_database(), current_schema()"
    folds_column_names = False
    partitioned = True
    applies_runs_in_sql = True

    def table_options(self, schema: TableSchema, *, partitioned: bool) -> dict[str, Any]:
        if not partitioned or not schema.primary_key:  # a keyless table is not partitioned
            return {}
        first = sa.column(schema.primary_key[0]).compile(dialect=self.sql_dialect())
        return {"postgresql_partition_by": f"HASH ({first})"}

    def partition_statements(self, schema: TableSchema, table: sa.Table) -> list[str]:
        if not schema.primary_key:
            return []
        preparer = self.sql_dialect().identifier_preparer
        name = preparer.format_table(table)
        return [
            f"CREATE TABLE IF NOT EXISTS {preparer.quote(f'{schema.name}_p{part}')} "
            f"PARTITION OF {name} FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {part});"
            for part in range(PARTITIONS)
        ]

    def entity_parser(self, kind: str, parse: Parse) -> Parse:
        if kind == "text":
            return lambda value: _without_nul(parse(value))
        return parse

    def refresh_statistics(self, conn: Connection, tables: Sequence[sa.Table]) -> None:
        # ANALYZE inside the transaction counts the rows it inserted itself; without it a
        # table created or filled by this load has no statistics, and a lookup of 1,000
        # keys scans every row of the entity (`entity = X` alone in the index condition).
        preparer = conn.dialect.identifier_preparer
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {preparer.format_table(table)}")

    def from_hex(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.decode(value, "hex")

    def insert_rows(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """COPY, each value made what the executemany would have bound (SQLAlchemy's bind
        processors: JSON to its text, say), then written by psycopg in COPY's text form:
        about 6x the rows/s of the pipelined executemany."""
        names = [c.name for c in table.columns]
        dialect = conn.dialect
        processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns]
        statement = _copy_statement(conn, table, names, text=True)
        raw: Any = conn.connection.driver_connection
        import psycopg  # here: a process that never loads into PostgreSQL starts faster

        try:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(
                        [
                            value if process is None or value is None else process(value)
                            for value, process in zip(
                                (row[name] for name in names), processors, strict=True
                            )
                        ]
                    )
        except psycopg.Error as error:  # as SQLAlchemy would have raised it
            raise sa.exc.DBAPIError(statement, None, error) from None

    def load_rows(
        self,
        conn: Connection,
        table: sa.Table,
        archive: ExportArchive,
        files_rows: str,
        schema: TableSchema,
        entry: TableEntry,
    ) -> None:
        binary = any(base_type(c.type) == "binary" for c in schema.columns)
        if not entry.whole or binary:  # COPY reads no hex into bytea
            super().load_rows(conn, table, archive, files_rows, schema, entry)
            return
        columns = [c.name for c in schema.columns]
        not_null = [
            c.name for c in schema.columns if base_type(c.type) == "text" and not c.nullable
        ]
        statement = _copy_statement(conn, table, columns, not_null)
        staging.counted(
            archive,
            files_rows,
            entry.rows,
            lambda: _copy_member(conn, statement, archive, files_rows, columns),
            schema,
        )

    def fill_stage(
        self,
        conn: Connection,
        stage: sa.Table,
        archive: ExportArchive,
        member: str,
        columns: Sequence[str],
    ) -> int:
        """The member's bytes straight into COPY (the server parses the CSV)."""
        statement = _copy_statement(conn, stage, columns)
        return _copy_member(conn, statement, archive, member, columns)


def _without_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("PostgreSQL's text cannot hold the character NUL")
    return text


def _copy_statement(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    not_null: Sequence[str] = (),
    *,
    text: bool = False,
) -> str:
    """`COPY table (columns) FROM STDIN` for CSV (an empty field in a `not_null` column is
    the empty string, not NULL), or for COPY's text form (`text`: what psycopg's
    `write_row` writes)."""
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    table_name = conn.dialect.identifier_preparer.format_table(table)
    if text:
        return f"COPY {table_name} ({names}) FROM STDIN"
    force = f", FORCE_NOT_NULL ({', '.join(quote(c) for c in not_null)})" if not_null else ""
    return f"COPY {table_name} ({names}) FROM STDIN (FORMAT csv{force})"


def _copy_member(
    conn: Connection, statement: str, archive: ExportArchive, member: str, columns: Sequence[str]
) -> int:
    """COPY a member's records; a text holding NUL, which PostgreSQL's text cannot hold,
    is refused naming its column (the server's message names none)."""
    try:
        return _copy_rows(conn, statement, archive.body(member, columns))
    except Exception as error:
        if getattr(error, "sqlstate", None) != CHARACTER_NOT_IN_REPERTOIRE:
            raise
        for row in archive.rows(member, columns):
            for name, value in zip(columns, row, strict=True):
                if isinstance(value, str) and "\x00" in value:
                    # "column name:" is how `staging.refusal` finds the column.
                    raise ValueError(
                        f"column {name}: PostgreSQL's text cannot hold the character NUL"
                    ) from None
        raise


def _copy_rows(conn: Connection, statement: str, chunks: Iterator[bytes]) -> int:
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(statement) as copy:
            for chunk in chunks:
                copy.write(chunk)
        return int(cursor.rowcount)
