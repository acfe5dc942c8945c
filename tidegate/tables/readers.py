"""Read a table's exported rows from the source as CSV text, in record-aligned chunks.

One reader per path a source reads by (`SourceDialect.csv_path`), each the fastest its
database offers:

- PostgreSQL: `COPY (SELECT …) TO STDOUT (FORMAT csv, HEADER)` (see pgcopy.py). The
  server prints every value the way csvrows.py specifies (DateStyle ISO, TimeZone UTC;
  the SELECT list adjusts booleans, bytes and empty strings).
- SQLite: the SELECT builds each CSV line in SQL, so Python only joins lines; per-row
  Python formatting is the ceiling of the row path (see the benchmarks).
- MySQL/MariaDB: rows streamed through a server-side cursor and formatted in Python.

Every reader yields UTF-8 bytes. Chunks end at a record boundary when the reader is asked
for that (`record_aligned`), so a chunk can be transcoded and inspected on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from tidegate.clients import RowCounter, client, stream_csv
from tidegate.db import Database, inline_sql
from tidegate.formats.csvrows import csv_chunks, header
from tidegate.sources.base import CsvPath, ReadColumn
from tidegate.sources.sqlite import FAIL, guarded_sql
from tidegate.tables.pgcopy import copy_through_libpq, copy_through_psql, psql_client
from tidegate.tables.schema import TableSpec
from tidegate.tables.selection import Selection, deleted_keys, row_filter


class RowReader(Protocol):
    """Reads one table's exported rows, or its deleted keys, as CSV."""

    def rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        """Header line, then the table's selected rows; calls `count` with rows read."""
        ...

    def deleted(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        """Header line of the key columns, then each deleted key; nothing if none."""
        ...


def reader_for(db: Database, record_aligned: bool = False) -> RowReader:
    """The reader of the path the source reads CSV by (`SourceDialect.csv_path`; see
    _BaseReader for `record_aligned`)."""
    readers: dict[CsvPath, type[CopyReader | SqlLinesReader | PythonRowsReader]] = {
        "copy": CopyReader,
        "sql_lines": SqlLinesReader,
        "rows": PythonRowsReader,
    }
    return readers[db.dialect.csv_path](db, record_aligned)


class _BaseReader:
    def __init__(self, db: Database, record_aligned: bool = False) -> None:
        """Args:
        db: the source.
        record_aligned: every chunk must end at a record boundary (the export needs
            that to name the value a non-UTF-8 output encoding cannot hold); rows are
            then read in-process, never by a client program.
        """
        self.db = db
        self.record_aligned = record_aligned

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


class PythonRowsReader(_BaseReader):
    """Server-side cursor, Python formatting (MySQL, MariaDB)."""

    def rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        columns = [self.db.dialect.csv_column(spec.table.c[c.name]) for c in spec.columns]
        query = self._rows_query(spec, selection, columns)
        return self._python_rows(query, [c.name for c in spec.columns], count)


class SqlLinesReader(_BaseReader):
    """Each CSV line built by SQLite itself (its shell, or its SQL)."""

    def _rows_through_cli(
        self, sqlite3: str, database: str, spec: TableSpec, selection: Selection, count: RowCounter
    ) -> Iterator[bytes]:
        """The sqlite3 shell's CSV output: it quotes and writes in C, NULL as an empty field
        and the empty string as "". REALs go through quote() (the shell prints only 15
        digits), blobs as hex. The header line is written here: the shell leaves it out
        when there are no rows."""
        columns: list[sa.ColumnElement[Any]] = []
        for column in spec.columns:
            c = self.db.quote(column.name)
            written = {
                "text": f"CASE WHEN instr({c}, char(0)) THEN {FAIL.format(c=c)} ELSE {c} END",
                "integer": c,
                "null": "NULL",
                "real": _real_text(c),
                "blob": f"lower(hex({c}))",
            }
            columns.append(sa.literal_column(f"{guarded_sql(c, column.type, written)} AS {c}"))
        sql = inline_sql(self.db, self._rows_query(spec, selection, columns))
        arguments = [
            sqlite3,
            "-batch",
            "-bail",
            "-readonly",
            "-csv",
            "-noheader",
            "-cmd",
            ".timeout 60000",
            database,
            sql,
        ]
        yield header([c.name for c in spec.columns]).encode("utf-8")
        yield from stream_csv(
            arguments, os.environ, count, "reading the source with sqlite3", with_header=False
        )

    def _field(self, column: str, portable: str) -> str:
        c = self.db.quote(column)
        quoted = f"'\"' || replace({c}, '\"', '\"\"') || '\"'"
        special = " OR ".join(f"instr({c}, {x})" for x in ("','", "'\"'", "char(10)", "char(13)"))
        special += f" OR {c} = ''"  # the empty string is "", NULL an empty field
        # Text is quoted only when it holds a comma, quote, LF or CR (RFC 4180). quote() of a
        # REAL gives 15 significant digits when they read back exactly, else 20: exact.
        written = {
            "text": f"CASE WHEN {special} THEN {quoted} ELSE {c} END",
            "integer": c,
            "null": "''",
            "real": _real_text(c),
            "blob": f"CASE length({c}) WHEN 0 THEN '\"\"' ELSE lower(hex({c})) END",
        }
        return guarded_sql(c, portable, written)

    def rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        """The rows; a value the SQL refused to write (see `guarded_sql`) is named in the
        error raised instead of the database's own."""
        try:
            yield from self._rows(spec, selection, count)
        except Exception as error:
            columns = [ReadColumn(c.name, c.type, c.sql_type) for c in spec.columns]
            with self.db.engine.connect() as conn:
                explained = self.db.dialect.explain_failed_read(
                    conn, spec.table, columns, spec.primary_key, error
                )
            if explained is None:
                raise
            raise explained from error

    def _rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        database = self.db.engine.url.database or ""
        sqlite3 = None if self.record_aligned else client("sqlite3")
        if (
            sqlite3 is not None
            and database not in ("", ":memory:")
            and not database.startswith("file:")
        ):
            yield from self._rows_through_cli(
                sqlite3, os.path.abspath(database), spec, selection, count
            )
            return
        line = " || ',' || ".join(self._field(c.name, c.type) for c in spec.columns)
        query = self._rows_query(spec, selection, [sa.literal_column(line)])
        sql = inline_sql(self.db, query)
        yield header([c.name for c in spec.columns]).encode("utf-8")
        raw = self.db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql)
            while lines := [row[0] for row in cursor.fetchmany(5000)]:
                count(len(lines))
                yield ("\n".join(lines) + "\n").encode("utf-8")
            cursor.close()
        finally:
            raw.close()


def _real_text(c: str) -> str:
    """SQL for a SQLite REAL's exact text: quote() gives 15 significant digits when they
    read back exactly, else 20, but `Inf` for an infinity, which no reader takes."""
    return f"CASE {c} WHEN 9e999 THEN 'Infinity' WHEN -9e999 THEN '-Infinity' ELSE quote({c}) END"


class CopyReader(_BaseReader):
    """PostgreSQL's COPY … TO STDOUT, values formatted by the server."""

    def rows(self, spec: TableSpec, selection: Selection, count: RowCounter) -> Iterator[bytes]:
        columns = [self.db.dialect.csv_column(spec.table.c[c.name]) for c in spec.columns]
        query = self._rows_query(spec, selection, columns)
        copy_sql = f"COPY ({inline_sql(self.db, query)}) TO STDOUT WITH (FORMAT csv, HEADER)"
        psql = None if self.record_aligned else psql_client()
        if psql is not None:
            yield from copy_through_psql(psql, self.db.engine.url, copy_sql, count)
        else:
            yield from copy_through_libpq(self.db.engine, copy_sql, count)
