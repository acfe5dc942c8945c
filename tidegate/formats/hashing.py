"""A write-only stream that hashes (sha1) and counts the bytes that pass through it."""

from __future__ import annotations

import hashlib
from typing import BinaryIO


class HashingWriter:
    """Writes to a target, keeping the sha1 and size of everything written.

    It is not seekable, so writers that could seek back (zipfile) write front to back, and
    the hash is of the final bytes.
    """

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha1 = hashlib.sha1()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.target.write(data)
        self.sha1.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def seek(self, *_args: object) -> int:
        raise OSError("not seekable")

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self.target.flush()
