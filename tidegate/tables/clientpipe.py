"""Reading an export's CSV from a database's own command-line client (psql, sqlite3).

Both clients format CSV in C and write it to a pipe, which this process reads in large
pieces; Python then handles a few hundred chunks instead of one value or message per row.
The chunks are not aligned to records, so the records are counted as they pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence

from tidegate.errors import SourceError

CHUNK_BYTES = 256 * 1024

RowCounter = Callable[[int], None]


def client(name: str) -> str | None:
    """The path of a client program, or None when it is missing or switched off with the
    environment variable TIDEGATE_NO_CLIENTS (then everything is read in-process)."""
    if os.environ.get("TIDEGATE_NO_CLIENTS"):
        return None
    return shutil.which(name)


def stream_csv(
    arguments: Sequence[str],
    env: Mapping[str, str],
    count: RowCounter,
    doing: str,
    *,
    with_header: bool,
) -> Iterator[bytes]:
    """Run a client that writes CSV records and yield its output.

    Args:
        arguments: the command line.
        env: its environment.
        count: called with the number of rows read, as they are read.
        doing: what the client does, for error messages.
        with_header: the client's first line is a header line, not a row.

    The client is stopped if the consumer stops early.

    Raises:
        SourceError: the client failed; its own message is in ours.
    """
    process = subprocess.Popen(
        list(arguments),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    assert process.stdout is not None and process.stderr is not None
    records = RecordCounter()
    header = 1 if with_header else 0
    try:
        while chunk := process.stdout.read(CHUNK_BYTES):
            found = records.feed(chunk)
            if found:
                count(found - header)
                header = 0
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


class RecordCounter:
    """Counts CSV records in a byte stream cut anywhere: line ends outside double quotes.

    A doubled quote inside a quoted field toggles twice, so it leaves the count right.
    """

    def __init__(self) -> None:
        self.quoted = False

    def feed(self, chunk: bytes) -> int:
        if not self.quoted and b'"' not in chunk:
            return chunk.count(b"\n")
        pieces = chunk.split(b'"')
        outside = pieces[1::2] if self.quoted else pieces[0::2]
        if len(pieces) % 2 == 0:  # an odd number of quotes
            self.quoted = not self.quoted
        return sum(piece.count(b"\n") for piece in outside)
