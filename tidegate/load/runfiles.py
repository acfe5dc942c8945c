"""Reading the files of an entity run: streamed, hashed, un-gzipped and split into record
lines, every check of the manifest made on the way.

Both ways of applying a run (record by record in Python, `entityrun`; or in SQL,
`entitysql`) read their files here, so a file is held to the same rules either way: no
line longer than the manifest says the file's longest is (memory per record follows what
the source held), and once it ends, its record count, size and sha1 as the manifest lists
them.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterator
from typing import BinaryIO, cast

from tidegate.errors import LoadError
from tidegate.formats.runmanifest import RunFile
from tidegate.storage import Location

CHUNK = 1024 * 1024  # un-gzipped bytes split into lines at a time


def record_lines(location: Location, folder: str, file: RunFile) -> Iterator[list[bytes]]:
    """The file's record lines (without their line end), a chunk's worth at a time.

    Raises:
        LoadError: a line longer than the manifest's longest, a file that is not whole
            gzip, or one whose records, size or sha1 differ from its manifest's (raised
            once the file is read to its end: a consumer that applies lines as they
            come does so inside the transaction this error rolls back).
    """
    where = f"{folder}/{file.name}"
    count = 0
    with location.reading(folder, file.name) as handle:
        hashed = _Hashing(handle)
        try:
            with gzip.GzipFile(fileobj=cast(BinaryIO, hashed), mode="rb") as unzipped:
                carried = b""
                while chunk := unzipped.read(CHUNK):
                    lines = (carried + chunk).split(b"\n")
                    carried = lines.pop()
                    _check_lengths(lines, carried, file, where)
                    count += len(lines)
                    if lines:
                        yield lines
                if carried:  # a last line without its line end
                    count += 1
                    yield [carried]
        except (OSError, EOFError, zlib.error) as error:
            raise LoadError(f"{where}: not a complete gzip file ({error})") from None
    if count != file.records or hashed.size != file.bytes or hashed.sha1.hexdigest() != file.sha1:
        raise LoadError(
            f"{where}: does not match its manifest (records, size or sha1)",
            "the file was altered or cut short: export the run again",
        )


def _check_lengths(lines: list[bytes], carried: bytes, file: RunFile, where: str) -> None:
    """No line (its line end counted) longer than the file's longest, and no unfinished
    line already past it: what is carried to the next chunk stays bounded too."""
    longest = max(map(len, lines), default=-1) + 1
    if longest > file.longest or len(carried) > file.longest:
        raise LoadError(
            f"{where}: a line is longer than its manifest's longest ({file.longest:,} bytes)"
        )


class _Hashing:
    """A read-only file that hashes and counts what is read through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha1 = hashlib.sha1()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha1.update(data)
        self.size += len(data)
        return data
