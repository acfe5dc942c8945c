"""Reading from a database's own command-line client (psql, sqlite3).

The clients format rows in C (CSV for the table export, JSON records for the entity
export) and write them to a pipe, which this process reads in large pieces; Python then
handles a few hundred chunks instead of one value or message per row, and the client's
work runs on a core of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO

from tidegate.errors import SourceError
from tidegate.formats.csvrows import RecordCounter

CHUNK_BYTES = 256 * 1024
PIPE_BYTES = 1024 * 1024

RowCounter = Callable[[int], None]


class ClientCannotWrite(SourceError):
    """A client program cannot write a value as the format wants (the sqlite3 program
    stops a text at a NUL): the read is done again in-process."""


def client(name: str) -> str | None:
    """The path of a client program, or None when it is missing or switched off with the
    environment variable TIDEGATE_NO_CLIENTS (then everything is read in-process)."""
    if os.environ.get("TIDEGATE_NO_CLIENTS"):
        return None
    return shutil.which(name)


def stream_output(
    arguments: Sequence[str], env: Mapping[str, str], doing: str, script: bytes = b""
) -> Iterator[bytes]:
    """Run a client and yield its output in chunks of up to CHUNK_BYTES, cut anywhere.

    `script` is written to its standard input, from a thread of its own (a long script
    and a long output would otherwise wait on each other). The client is stopped if the
    consumer stops early.

    Raises:
        SourceError: the client failed; its own message is in ours (`doing` says what
            it was doing).
    """
    process = subprocess.Popen(
        list(arguments),
        stdin=subprocess.PIPE if script else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    assert process.stdout is not None and process.stderr is not None
    _widen(process.stdout)
    if script:
        threading.Thread(target=_feed, args=(process, script), daemon=True).start()
    try:
        while chunk := process.stdout.read(CHUNK_BYTES):
            yield chunk
        message = process.stderr.read().decode("utf-8", "replace")
        if process.wait() != 0:
            text = " ".join(message.split()) or f"exit status {process.returncode}"
            raise SourceError(f"{doing}: {text}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def stream_csv(
    arguments: Sequence[str],
    env: Mapping[str, str],
    count: RowCounter,
    doing: str,
    *,
    with_header: bool,
) -> Iterator[bytes]:
    """Run a client that writes CSV records and yield its output (see `stream_output`),
    calling `count` with the number of rows read as they are read; with `with_header`,
    the client's first line is a header line, not a row."""
    records = RecordCounter()
    header = 1 if with_header else 0
    for chunk in stream_output(arguments, env, doing):
        found = records.feed(chunk)
        if found:
            count(found - header)
            header = 0
        yield chunk


def _widen(pipe: IO[bytes]) -> None:
    """Let the client run up to a megabyte ahead of this process (Linux; elsewhere pipes
    keep their size): with the default 64 KiB it waits whenever this process is busy."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _feed(process: subprocess.Popen[bytes], script: bytes) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(script)
        process.stdin.close()
    except OSError:  # the client stopped early: its exit status and message tell why
        pass


def stream_lines(
    arguments: Sequence[str], env: Mapping[str, str], doing: str, script: bytes = b""
) -> Iterator[list[bytes]]:
    """Run a client that writes one record per line (no newline inside a record) and yield
    its lines, each with its newline, a chunk's worth at a time (see `stream_output`)."""
    rest = b""
    for chunk in stream_output(arguments, env, doing, script):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if lines:
            yield [line + b"\n" for line in lines]
    if rest:
        yield [rest + b"\n"]
