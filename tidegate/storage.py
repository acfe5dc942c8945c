"""Output locations: a directory or any fsspec URL (memory://, s3://, …).

An export folder is published so that no reader ever sees part of one. Each attempt at a
folder is written under a hidden staging name of its own, so that two processes writing the
same folder (one of them a run that has lost its job's lock and does not know it yet) never
write into each other's files; only then is it published:

- On a local file system each file is fsynced, then the folder renamed into place in one
  atomic step (and the parent directory fsynced).
- On object stores, which have no atomic rename, the files are moved into place in the
  order they were written, the `.extracted.xml` manifest last: a folder without its
  manifest is incomplete, and readers must skip it.

The exporter never overwrites a complete folder.

A single file that marks something complete (an entity run's manifest) is written whole
or not at all (`writing_whole`): locally under a temporary name beside it, fsynced and
renamed into place; an object store shows an object only once it is written whole.

On an object store with buckets (S3, GCS, Azure) tidegate never creates the bucket: a
misspelt one must fail, not start a second stream somewhere nobody reads. Writing checks
once that the bucket exists, and no directory is ever made there (fsspec's `makedirs`
would create the bucket). A failure of the store's client (no credentials, an endpoint
that cannot be reached) is one line naming the location and what to check.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tidegate.errors import OutputError

# Filesystems whose first path element is a bucket or container, which tidegate never makes.
BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az", "adl"})
# The modules of object stores' clients, whose errors are not OSErrors.
STORE_CLIENTS = ("botocore", "aiobotocore", "s3fs", "google", "gcsfs", "azure", "adlfs")
STORE_HINTS = {
    "NoCredentialsError": "give credentials in the environment (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) or in [output] storage_options",
    "PartialCredentialsError": "give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    "EndpointConnectionError": "check the endpoint ([output] storage_options endpoint_url, or "
    "AWS_ENDPOINT_URL) and that it can be reached from here",
    "ConnectTimeoutError": "check the endpoint and that it can be reached from here",
}
STAGING = ".tidegate-staging"
PARTIAL = ".partial"
"""Suffix of the temporary name (`.<name>.partial`) a file written whole has meanwhile."""


class Location:
    """The root of an output location."""

    def __init__(
        self,
        url: str,
        *,
        label: str = "[output] location",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Args:
        url: a directory or an fsspec URL.
        label: where the URL came from, for messages.
        options: the filesystem's storage options ([output] storage_options).
        """
        self.url = url
        self.label = label
        try:
            fs, root = fsspec.core.url_to_fs(url, **(options or {}))
        except (ImportError, ValueError, TypeError) as error:
            extra = "; for s3:// install tidegate[s3]" if url.startswith("s3") else ""
            raise OutputError(
                f"{label}: cannot use {url!r}: {error}",
                f"use a directory, or an fsspec URL whose filesystem package is installed{extra}",
            ) from None
        self.fs: Any = fs
        self.root: str = root.rstrip("/") or "/"
        self.local = isinstance(fs, LocalFileSystem)
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self.bucket = self.root.split("/")[0] if protocols & BUCKET_PROTOCOLS else None
        self._bucket_seen = False

    @contextmanager
    def _store_calls(self, doing: str) -> Iterator[None]:
        """Turns a failure of an object store's client into one line (an OSError is left
        to the caller, which says what it was doing)."""
        try:
            yield
        except OSError:
            raise
        except Exception as error:
            if not type(error).__module__.startswith(STORE_CLIENTS):
                raise
            reason = " ".join(str(error).split()) or type(error).__name__
            raise OutputError(
                f"{self.label}: cannot {doing} in {self.url}: {reason}",
                STORE_HINTS.get(
                    type(error).__name__, "check the store's credentials, endpoint and network"
                ),
            ) from None

    def require_bucket(self) -> None:
        """Raise unless the location's bucket exists (checked once): tidegate never
        creates one."""
        if self.bucket is None or self._bucket_seen:
            return
        try:
            # `info`, not `exists`, which takes a failure (no credentials, say) for "no"
            with self._store_calls(f"find bucket {self.bucket!r}"):
                self.fs.info(self.bucket)
        except FileNotFoundError:
            raise OutputError(
                f"{self.label}: bucket {self.bucket!r} of {self.url} does not exist "
                "(tidegate never creates a bucket)",
                "create the bucket, or correct the location's name",
            ) from None
        except OSError as error:
            raise self._error(f"find bucket {self.bucket!r}", error) from None
        self._bucket_seen = True

    def _makedirs(self, path: str) -> None:
        """Make a directory where the filesystem has them (not in a bucket: see the module
        docstring)."""
        if self.bucket is None:
            self.fs.makedirs(path, exist_ok=True)

    @property
    def identity(self) -> str:
        """The location as one text whatever the working directory or spelling: the
        filesystem's protocol and the absolute root (`file:///srv/exports`)."""
        return str(self.fs.unstrip_protocol(self.root))

    def path(self, *parts: str) -> str:
        """A path below the root."""
        return "/".join([self.root, *parts])

    def _error(self, doing: str, error: OSError) -> OutputError:
        reason = error.strerror or str(error) or type(error).__name__
        return OutputError(
            f"{self.label}: cannot {doing} in {self.url}: {reason}",
            "check that the location exists, is writable and has space",
        )

    def write_error(self, what: str, error: OSError) -> OutputError:
        """The one-line error for a write below the root that failed."""
        return self._error(f"write {what}", error)

    def folders(self) -> list[str]:
        """Names of the folders directly below the root (none if the root is missing)."""
        return self._entries("directory", self.root)

    def files(self, *parts: str) -> list[str]:
        """Names of the files directly in a folder below the root (none if it is missing)."""
        return self._entries("file", self.path(*parts))

    def _entries(self, kind: str, path: str) -> list[str]:
        if self.local:
            return self._local_entries(kind, path)
        try:
            with self._store_calls(f"list {path}"):
                entries = self.fs.ls(path, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise self._error(f"list {path}", error) from None
        return sorted(
            entry["name"].rstrip("/").rsplit("/", 1)[-1]
            for entry in entries
            if entry.get("type") == kind
        )

    def _local_entries(self, kind: str, path: str) -> list[str]:
        """As `_entries`, where anything that is not a folder counts as a file (a link, a
        FIFO, a device), so that a reader names it instead of passing it over."""
        try:
            with os.scandir(path) as entries:
                return sorted(
                    entry.name for entry in entries if entry.is_dir() == (kind == "directory")
                )
        except FileNotFoundError:
            return []
        except OSError as error:
            raise self._error(f"list {path}", error) from None

    @contextmanager
    def reading(self, *parts: str) -> Iterator[BinaryIO]:
        """A file below the root, open to read (a stream: large files are not loaded).

        On a local file system a symbolic link is never followed and only a regular file
        is read: an export folder is input from anywhere, and a file linked to
        ``/dev/zero`` or to a file of the reader's must not be read as an export's.

        Raises:
            OutputError: the file is missing, a link, or not a regular file.
        """
        where = "/".join(parts)
        if self.local:
            handle: BinaryIO = os.fdopen(self._open_regular(where), "rb")
        else:
            try:
                with self._store_calls(f"read {where}"):
                    handle = self.fs.open(self.path(*parts), "rb")
            except FileNotFoundError:
                raise OutputError(f"{where} is missing from {self.url}") from None
        with handle, self._store_calls(f"read {where}"):
            yield handle

    def _open_regular(self, where: str) -> int:
        """A file descriptor of a local regular file, opened without following a link."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path(where), flags)
        except FileNotFoundError:
            raise OutputError(f"{where} is missing from {self.url}") from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise _not_read(where, "is a symbolic link") from None
            raise self._error(f"read {where}", error) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _not_read(where, "is not a regular file")
        return fd

    def exists(self, *parts: str) -> bool:
        """Whether a file or folder exists below the root (a link counts, so that a
        reader names it rather than passing it over)."""
        path = self.path(*parts)
        if self.local:
            return os.path.lexists(path)
        with self._store_calls(f"look for {'/'.join(parts)}"):
            return bool(self.fs.exists(path))

    def read_bytes(self, *parts: str, limit: int) -> bytes:
        """A whole small file, at most ``limit`` bytes of it (read as `reading` reads).

        Raises:
            OutputError: the file is missing, a link, not a regular file, or larger
                than ``limit``.
        """
        with self.reading(*parts) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise _not_read("/".join(parts), f"is larger than {limit:,} bytes")
        return data

    @contextmanager
    def writing(self, *parts: str) -> Iterator[BinaryIO]:
        """A file below the root to write, its folder created first."""
        path = self.path(*parts)
        self.require_bucket()
        try:
            with self._store_calls(f"write {'/'.join(parts)}"):
                self._makedirs(path.rsplit("/", 1)[0])
                with self.fs.open(path, "wb") as handle:
                    yield handle
        except OSError as error:
            raise self._error(f"write {'/'.join(parts)}", error) from None

    @contextmanager
    def writing_whole(self, *parts: str) -> Iterator[BinaryIO]:
        """Like `writing`, but a reader finds the file complete or not at all, even if the
        writer dies half-way: on a local file system it is written as `.<name>.partial`
        beside its place, fsynced, then renamed into place. A writer that died leaves
        only the partial file (see `partial_name`)."""
        if not self.local:
            with self.writing(*parts) as handle:
                yield handle
            return
        path = self.path(*parts)
        folder, name = path.rsplit("/", 1)
        partial = f"{folder}/{partial_name(name)}"
        try:
            os.makedirs(folder, exist_ok=True)
            with open(partial, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(partial, path)
            _fsync_dir(folder)
        except OSError as error:
            raise self._error(f"write {'/'.join(parts)}", error) from None

    def size(self, *parts: str) -> int:
        """The size of a file in bytes."""
        with self._store_calls(f"read the size of {'/'.join(parts)}"):
            return int(self.fs.size(self.path(*parts)))

    def remove(self, *parts: str) -> None:
        """Remove a file or folder tree, if it exists."""
        path = self.path(*parts)
        with contextlib.suppress(FileNotFoundError), self._store_calls(f"remove {path}"):
            if self.local:
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.exists(path):
                    os.remove(path)
            elif self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    @contextmanager
    def publishing(
        self, folder: str, *, confirm: Callable[[], None] = lambda: None
    ) -> Iterator[FolderWriter]:
        """Write the files of a new folder, then publish it whole.

        Files are written in the order the caller writes them, into a staging folder of
        this attempt's own; the caller writes the manifest last. When the block ends,
        ``confirm`` is called, right before the first step that anybody else can see: it
        raises to stop (the job's lock was lost), and then nothing is published and this
        attempt's files are removed. After it, leftovers of other attempts at the same
        folder (a killed run's staging folder, or that of a run still writing which has
        lost its lock, and an incomplete folder) are removed, and the folder published. A
        complete folder is never touched (the caller checks).

        Raises:
            OutputError: the location cannot be written.
        """
        attempt = f"{folder}.{secrets.token_hex(4)}"
        staging = self.path(STAGING, attempt)
        self.require_bucket()
        try:
            if self.local:
                os.makedirs(staging)
            else:
                with self._store_calls(f"write folder {folder}"):
                    self._makedirs(staging)
            writer = FolderWriter(self, staging)
            try:
                yield writer
                if self.local:
                    _fsync_files(staging)
                confirm()
            except BaseException as error:
                with contextlib.suppress(OSError):
                    self.remove(STAGING, attempt)
                if isinstance(error, OSError):
                    # The run that took over a lost lock removes this attempt's files:
                    # then the lost lock is what to report.
                    confirm()
                raise
            self._remove_attempts(folder, keep=attempt)
            self.remove(folder)  # an incomplete folder can only come from a crash
            if self.local:
                os.rename(staging, self.path(folder))
                _fsync_dir(self.root)
            else:
                target = self.path(folder)
                with self._store_calls(f"publish folder {folder}"):
                    self._makedirs(target)
                    for name in writer.names:  # in the order written: the manifest last
                        self.fs.mv(f"{staging}/{name}", f"{target}/{name}")
                self.remove(STAGING, attempt)
        except OSError as error:
            raise self._error(f"write folder {folder}", error) from None

    def _remove_attempts(self, folder: str, *, keep: str) -> None:
        """Remove the staging folders of other attempts at a folder (runs killed before
        they published it; the name without a suffix is an older tidegate's)."""
        for name in self._entries("directory", self.path(STAGING)):
            if name != keep and (name == folder or name.startswith(f"{folder}.")):
                self.remove(STAGING, name)


def _not_read(where: str, problem: str) -> OutputError:
    return OutputError(
        f"{where}: not read: it {problem}",
        "an export folder holds regular files written by tidegate; replace this one with "
        "the file itself, or export again",
    )


def partial_name(name: str) -> str:
    """The temporary name of a file being written whole."""
    return f".{name}{PARTIAL}"


class FolderWriter:
    """Opens files for writing inside one folder being published."""

    def __init__(self, location: Location, directory: str) -> None:
        self.location = location
        self.directory = directory
        self.names: list[str] = []  # the files, in the order they were opened

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        """A binary file to write, closed (and flushed) when the block ends."""
        self.names.append(name)
        with (
            self.location._store_calls(f"write {name}"),
            self.location.fs.open(f"{self.directory}/{name}", "wb") as handle,
        ):
            yield handle

    def write(self, name: str, data: bytes) -> None:
        """A whole (small) file."""
        with self.open(name) as handle:
            handle.write(data)


def _fsync_files(directory: str) -> None:
    for name in os.listdir(directory):
        fd = os.open(os.path.join(directory, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
