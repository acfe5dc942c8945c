"""Read a table's exported rows from the source as CSV text, in record-aligned chunks.

One reader per dialect, each using the fastest path its database offers:

- PostgreSQL: `COPY (SELECT …) TO STDOUT (FORMAT csv, HEADER)`. The server formats every
  value (the SELECT list turns each type into the text csvrows.py specifies) on its own
  core while this process compresses.
- SQLite: the SELECT builds each CSV line in SQL, so Python only joins lines; per-row
  Python formatting is the ceiling of the row path (see the benchmarks).
- MySQL/MariaDB: rows streamed through a server-side cursor and formatted in Python.

Every reader yields UTF-8 bytes; chunks always end at a record boundary, so a chunk can be
transcoded or inspected on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from tidegate.db import Database, inline_sql
from tidegate.formats.csvrows import csv_chunks, header
from tidegate.tables.schema import TableSpec
from tidegate.tables.selection import Selection, deleted_keys, row_filter

CHUNK_BYTES = 256 * 1024

RowCounter = Callable[[int], None]


class RowReader(Protocol):
    """Reads one table's exported rows, or its deleted keys, as CSV."""

    def rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        """Header line, then the table's selected rows; calls `count` with rows read."""
        ...

    def deleted(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        """Header line of the key columns, then each deleted key; nothing if none."""
        ...


def reader_for(db: Database) -> RowReader:
    """The reader for the database's dialect."""
    readers: dict[str, type[PostgresReader | SQLiteReader | MySQLReader]] = {
        "postgresql": PostgresReader,
        "sqlite": SQLiteReader,
        "mysql": MySQLReader,
    }
    return readers[db.dialect](db)


class _BaseReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _rows_query(
        self, spec: TableSpec, selection: Selection, columns: Sequence[sa.ColumnElement[Any]]
    ) -> sa.Select[Any]:
        query = sa.select(*columns).select_from(spec.table)
        where = row_filter(self.db, spec, selection)
        return query if where is None else query.where(where)

    def _python_rows(
        self, query: sa.Select[Any], columns: list[str], count: RowCounter
    ) -> Iterator[bytes]:
        """Rows fetched in batches and formatted by csvrows (the portable path).

        The SQL goes to the driver as text, so values arrive exactly as the driver reads
        them, with no SQLAlchemy type conversion (which would, say, round a DOUBLE).
        """
        sql = inline_sql(self.db, query)
        with self.db.engine.connect() as raw:
            conn = raw.execution_options(stream_results=True, yield_per=2000)
            counter = [0]
            reported = 0
            for text in csv_chunks(columns, conn.exec_driver_sql(sql), counter):
                count(counter[0] - reported)
                reported = counter[0]
                yield text.encode("utf-8")

    def deleted(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        query = deleted_keys(self.db, spec, selection)
        chunks = self._python_rows(query, list(spec.primary_key), count)
        header_chunk = next(chunks)
        first = next(chunks, None)
        if first is None:
            return
        yield header_chunk
        yield first
        yield from chunks


class MySQLReader(_BaseReader):
    """Server-side cursor, Python formatting."""

    def rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        columns = [spec.table.c[c.name] for c in spec.columns]
        query = self._rows_query(spec, selection, columns)
        return self._python_rows(query, [c.name for c in spec.columns], count)


class SQLiteReader(_BaseReader):
    """Each CSV line built by SQLite itself."""

    def _field(self, column: str) -> str:
        c = self.db.quote(column)
        needs_quotes = "'*[,\"' || char(10) || char(13) || ']*'"
        # REAL: 15 significant digits when they read back exactly, else 17 (always exact).
        real = (
            f"CASE WHEN CAST(printf('%!.15g', {c}) AS REAL) = {c} "
            f"THEN printf('%!.15g', {c}) ELSE printf('%!.17g', {c}) END"
        )
        return (
            f"CASE typeof({c}) WHEN 'null' THEN '' WHEN 'integer' THEN {c} "
            f"WHEN 'real' THEN {real} WHEN 'blob' THEN lower(hex({c})) "
            f"ELSE CASE WHEN {c} GLOB {needs_quotes} "
            f"THEN '\"' || replace({c}, '\"', '\"\"') || '\"' ELSE {c} END END"
        )

    def rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        line = " || ',' || ".join(self._field(c.name) for c in spec.columns)
        query = self._rows_query(spec, selection, [sa.literal_column(line)])
        yield header([c.name for c in spec.columns]).encode("utf-8")
        with self.db.engine.connect() as conn:
            result = conn.execution_options(yield_per=5000).execute(query)
            for partition in result.scalars().partitions():
                count(len(partition))
                yield ("\n".join(partition) + "\n").encode("utf-8")


class PostgresReader(_BaseReader):
    """COPY … TO STDOUT, values formatted by the server."""

    def _field(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        kind = column.type
        if isinstance(kind, sa.DateTime):
            if kind.timezone:
                utc = sa.func.timezone("UTC", column)
                text = sa.func.to_char(utc, "YYYY-MM-DD HH24:MI:SS.US") + "+00:00"
            else:
                text = sa.func.to_char(column, "YYYY-MM-DD HH24:MI:SS.US")
        elif isinstance(kind, sa.Time):
            text = sa.func.to_char(column, "HH24:MI:SS.US")
        elif isinstance(kind, sa.Boolean):
            text = sa.case((column, "true"), (~column, "false"))
        elif isinstance(kind, sa.LargeBinary) or type(kind).__name__ == "BYTEA":
            text = sa.func.encode(column, "hex")
        elif isinstance(kind, sa.String | sa.Enum):
            text = sa.func.nullif(column, "")  # "" and NULL are both an empty field
        else:
            return column.label(column.name)
        return text.label(column.name)

    def rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        columns = [self._field(spec.table.c[c.name]) for c in spec.columns]
        query = self._rows_query(spec, selection, columns)
        sql = inline_sql(self.db, query)
        copy_sql = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)"
        raw = self.db.engine.raw_connection()
        try:
            connection = raw.driver_connection
            with connection.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute("SET DateStyle = 'ISO, YMD'")
                cursor.execute("SET client_encoding = 'UTF8'")
                yield from _batched_copy(cursor, copy_sql, count)
            connection.rollback()  # type: ignore[union-attr]
        finally:
            raw.close()


def _batched_copy(cursor: Any, copy_sql: str, count: RowCounter) -> Iterator[bytes]:
    """COPY output (one row per message) gathered into chunks of whole records."""
    batch: list[bytes] = []
    size = 0
    rows = -1  # the first message is the header
    with cursor.copy(copy_sql) as copy:
        for data in copy:
            batch.append(bytes(data))
            size += len(data)
            rows += 1
            if size >= CHUNK_BYTES:
                count(rows)
                yield b"".join(batch)
                batch, size, rows = [], 0, 0
    if batch:
        count(max(rows, 0))
        yield b"".join(batch)
