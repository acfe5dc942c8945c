"""`COPY … TO STDOUT` from PostgreSQL, the bulk path of the table export, two ways.

- Through the `psql` client, when it is installed: it reads the server's COPY messages in C
  and this process reads its output in large pieces. PostgreSQL sends one message per row,
  and handling them in Python costs about 0.75 µs each, the largest single cost of an
  export; with psql a first export of 2M rows took 1.5 s instead of 2.3 s (bench/).
- Through libpq in this process (psycopg's `pgconn`), when psql is missing, when
  `TIDEGATE_NO_CLIENTS` is set, or when chunks must end at record boundaries (clients.py
  has the client side).

Both run the same statement with the same session settings, so their output is the same
bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import URL, Engine

from tidegate.clients import CHUNK_BYTES, RowCounter, client, stream_csv
from tidegate.errors import SourceError

# How the server must print values for csvrows.py's format.
SESSION_SETTINGS = (
    "SET DateStyle = 'ISO, YMD'",
    "SET TimeZone = 'UTC'",
    "SET IntervalStyle = 'iso_8601'",
    "SET client_encoding = 'UTF8'",
)


def psql_client() -> str | None:
    """The psql executable to use, or None for the in-process path."""
    return client("psql")


def copy_through_psql(psql: str, url: URL, copy_sql: str, count: RowCounter) -> Iterator[bytes]:
    """COPY output as psql writes it, in large chunks (not aligned to records).

    The password travels in the environment, never on the command line.
    """
    target = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = {**os.environ, "PGCLIENTENCODING": "UTF8", "PGAPPNAME": "tidegate"}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    statements = [argument for sql in (*SESSION_SETTINGS, copy_sql) for argument in ("-c", sql)]
    arguments = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target, *statements]
    return stream_csv(arguments, env, count, "reading the source with COPY", with_header=True)


def copy_through_libpq(engine: Engine, copy_sql: str, count: RowCounter) -> Iterator[bytes]:
    """COPY output read in this process, gathered into chunks of whole records."""
    raw = engine.raw_connection()
    try:
        connection: Any = raw.driver_connection
        with connection.cursor() as cursor:
            for statement in SESSION_SETTINGS:
                cursor.execute(statement)
        yield from _copy_out(connection.pgconn, copy_sql, count)
    finally:
        # The COPY ran below psycopg's own bookkeeping, so the connection is not handed
        # back to the pool: it is closed.
        raw.invalidate()


def _copy_out(pgconn: Any, copy_sql: str, count: RowCounter) -> Iterator[bytes]:
    """The COPY through libpq's PQgetCopyData (it blocks without holding the GIL)."""
    from psycopg import pq  # here: importing psycopg costs 0.1 s that a SQLite run never needs

    pgconn.send_query(copy_sql.encode())
    started = pgconn.get_result()
    if started.status != pq.ExecStatus.COPY_OUT:
        raise _copy_error(started.error_message or pgconn.error_message)
    batch: list[Any] = []
    append = batch.append
    read = pgconn.get_copy_data
    size = 0
    header = 1  # the first message is the header line, not a row
    # The per-message loop is the hot path: keep it to a call, a test, an append, an add.
    while True:
        nbytes, data = read(0)
        if nbytes < 0:
            break
        append(data)
        size += nbytes
        if size >= CHUNK_BYTES:
            count(len(batch) - header)
            yield b"".join(batch)
            batch.clear()
            size = header = 0
    finished = pgconn.get_result()
    while pgconn.get_result() is not None:
        pass
    if nbytes == -2 or finished is None or finished.status != pq.ExecStatus.COMMAND_OK:
        message = finished.error_message if finished is not None else b""
        raise _copy_error(message or pgconn.error_message)
    if batch:
        count(len(batch) - header)
        yield b"".join(batch)


def _copy_error(message: bytes) -> SourceError:
    text = " ".join(message.decode("utf-8", "replace").split()) or "COPY failed"
    return SourceError(f"reading the source with COPY: {text}")
