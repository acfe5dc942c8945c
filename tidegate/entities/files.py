"""The gzip JSON Lines files one worker of an entity export writes, rotated by size."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import BinaryIO, cast

from isal import igzip_threaded

from tidegate.errors import ExportError, FormatError
from tidegate.formats.hashing import HashingWriter
from tidegate.formats.jsonl import manifest_name
from tidegate.formats.naming import EntityExportKind, EntityFileName
from tidegate.formats.runmanifest import MAX_RECORD_BYTES, manifest_kind
from tidegate.storage import PARTIAL, Location

FOLDER = "entities"
"""Entity-export files live in this folder of the output location."""


@dataclass(frozen=True)
class WrittenFile:
    """One finished file, as the run's manifest lists it."""

    name: str
    entity: str
    thread: int
    seq: int
    records: int
    bytes: int
    sha1: str
    longest: int  # bytes of the file's longest record line: the loader's bound for it


class _GzipStream:
    """ISA-L's threaded gzip writer, whose errors leave it once, as new exceptions.

    That writer keeps the first error of its compressing thread and raises the same
    exception object again at every later call. An exception raised twice can become its
    own context, and `contextlib.ExitStack` then walks that chain forever (seen: a full
    disk spun an entity export at 100% CPU while it held the job's lock). So an error
    leaves here as a new `OSError` without a context, after which the writer's threads
    are stopped and nothing more is written.
    """

    def __init__(self, raw: BinaryIO) -> None:
        # Level 1 (several times faster than zlib's default), compressed in a thread of its
        # own: ISA-L releases the GIL, so it overlaps the making of records.
        self._gzip = igzip_threaded.open(raw, "wb", compresslevel=1, threads=1)  # type: ignore[no-untyped-call]

    def write(self, data: bytes) -> None:
        self._call(self._gzip.write, data)

    def close(self) -> None:
        """Flush the gzip trailer (the file below stays open)."""
        self._call(self._gzip.close)

    def abort(self) -> None:
        """Stop the writer's threads, whatever state it is in."""
        with suppress(Exception):
            self._gzip.close()  # stops the threads even when it raises; then a no-op

    def _call(self, method: Callable[..., object], *args: object) -> None:
        failure: OSError | None = None
        try:
            method(*args)
        except OSError as error:
            failure = OSError(error.errno, error.strerror)
        if failure is not None:  # raised here, outside the handler: no context
            self.abort()
            raise failure


class WorkerFiles:
    """Writes records to files named by `name_for(seq)`, starting a new file every
    `records_per_file` records (0: one file for everything)."""

    def __init__(
        self,
        location: Location,
        name_for: Callable[[int], str],
        entity: str,
        thread: int,
        records_per_file: int,
    ) -> None:
        self.location = location
        self.name_for = name_for
        self.entity = entity
        self.thread = thread
        self.records_per_file = records_per_file
        self.written: list[WrittenFile] = []
        self._stack: ExitStack | None = None
        self._gzip: _GzipStream | None = None
        self._hashing: HashingWriter | None = None
        self._records = 0
        self._longest = 0

    def write(self, records: list[bytes]) -> None:
        """Write records (lines), starting new files as `records_per_file` says.

        Raises:
            OutputError: the location cannot be written (the file is abandoned; the next
                run removes it).
        """
        with self._abandoned_on_error():
            self._write(records)

    def _write(self, records: list[bytes]) -> None:
        while records:
            if self._gzip is None or (
                self.records_per_file and self._records >= self.records_per_file
            ):
                self._next_file()
            assert self._gzip is not None
            room = self.records_per_file - self._records if self.records_per_file else len(records)
            part, records = records[:room], records[room:]
            self._longest = max(self._longest, *map(len, part))
            if self._longest > MAX_RECORD_BYTES:
                raise ExportError(
                    f"an entity record of {self.entity or 'this run'} is "
                    f"{self._longest:,} bytes long, more than a loader reads "
                    f"({MAX_RECORD_BYTES:,})",
                    "export that entity's tables with a table export instead",
                )
            # Records reach the compressor in groups: one call per record cost more than the
            # compression itself.
            self._gzip.write(b"".join(part))
            self._records += len(part)

    def _next_file(self) -> None:
        self._finish()
        stack = ExitStack()
        target = stack.enter_context(
            self.location.writing(FOLDER, self.name_for(len(self.written) + 1))
        )
        self._hashing = HashingWriter(target)
        self._gzip = _GzipStream(cast(BinaryIO, self._hashing))
        self._stack = stack
        self._records = 0
        self._longest = 0

    def _finish(self) -> None:
        if self._stack is None or self._hashing is None or self._gzip is None:
            return
        self._gzip.close()  # the gzip trailer
        self._stack.close()  # then the file
        seq = len(self.written) + 1
        self.written.append(
            WrittenFile(
                self.name_for(seq),
                self.entity,
                self.thread,
                seq,
                self._records,
                self._hashing.size,
                self._hashing.sha1.hexdigest(),
                self._longest,
            )
        )
        self._stack = self._gzip = self._hashing = None

    def close(self) -> list[WrittenFile]:
        """Finish the last file; returns every file written (a worker with no records
        writes one empty file, so every thread of a run has its file)."""
        with self._abandoned_on_error():
            if not self.written and self._gzip is None:
                self._next_file()
            self._finish()
        return self.written

    @contextmanager
    def _abandoned_on_error(self) -> Iterator[None]:
        """On an error, stop the compressor's threads and close the file; a write error
        becomes the location's one-line error."""
        try:
            yield
        except BaseException as error:
            if self._gzip is not None:
                self._gzip.abort()
            if self._stack is not None:
                with suppress(Exception):
                    self._stack.close()
            self._stack = self._gzip = self._hashing = None
            if isinstance(error, OSError):
                raise self.location.write_error(FOLDER, error) from None
            raise


def remove_unfinished(location: Location, kind: EntityExportKind, run: int) -> list[str]:
    """Remove the files of earlier runs of `kind` that have no manifest: runs killed before
    they finished, whose files no consumer reads (run numbers are never reused, so they
    would stay forever), and the partial manifests of runs killed while writing them.
    Returns the names removed.

    Only runs numbered below `run` are touched. Run numbers are handed out under the job's
    lock (`jobs.recorded_run`), so such a run has died, or has lost the lock and is fenced:
    it never writes its manifest. The run that holds the lock always has the highest
    number, so no run, not even one that has lost the lock, removes the files of the run
    that holds it."""
    finished: dict[int, bool] = {}
    removed = []
    for name in location.files(FOLDER):
        if name.startswith(".") and name.endswith(PARTIAL):  # a manifest its run died writing
            found = manifest_kind(name[1 : -len(PARTIAL)])
            if found is not None and found[0] == kind and found[1] < run:
                location.remove(FOLDER, name)
                removed.append(name)
            continue
        try:
            parsed = EntityFileName.parse(name)
        except FormatError:
            continue
        if parsed.kind != kind or parsed.run >= run:
            continue
        if parsed.run not in finished:
            finished[parsed.run] = location.exists(FOLDER, manifest_name(kind, parsed.run))
        if not finished[parsed.run]:
            location.remove(FOLDER, name)
            removed.append(name)
    return removed
