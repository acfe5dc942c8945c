"""A table export's zip, opened as hostile input.

Before any member is read, the archive must hold exactly the members its manifest and
schema call for: each name plain (no `/`, `\\`, `..`, leading `.`, absolute path), no
links, no member twice, nothing else. Each member is read as a stream, its sha1 checked
against its `.sha1` member as it ends, and its size bounded by the size the export
recorded for it: the manifest lists every member's inflated size, the zip's directory
must say the same before a byte is inflated, and inflating stops with an error past it (so
a zip bomb inflates no further than its own manifest admits, while an honest member that
compresses 1000:1 loads). A CSV record or value longer than `MAX_RECORD_BYTES`, more than
any source can hold, is refused: memory stays bounded whatever the file holds.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import re
import stat
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from tidegate.errors import LoadError
from tidegate.formats import csvrows
from tidegate.formats.manifest import Manifest
from tidegate.formats.naming import SCHEMA_MEMBER, sha1_name
from tidegate.formats.tableschema import TableSchema, parse_schema_document
from tidegate.formats.tablezip import INFLATE_ERRORS, SHA1_FILE_BYTES, inflater, parse_sha1_line

MAX_SCHEMA_BYTES = 64 * 1024 * 1024
"""The most of the schema member read into memory (ten thousand tables take a few MB)."""
MAX_RECORD_BYTES = csvrows.MAX_RECORD_BYTES
ROWS_AT_ONCE = 4096
UNRECORDED_LONGEST = 64 * 1024 * 1024
"""The bound on records of a member whose manifest records none (exports of tidegate 0.1,
whose loader refused longer lines)."""
MAX_HEADER_BYTES = 4 * 1024 * 1024
"""The most read of a header line (4,096 columns of 64 four-byte characters, quoted, fit)."""
CHUNK = 1024 * 1024

# What reading a damaged member raises: the zip library's errors, the inflater's.
_DAMAGED: tuple[type[Exception], ...] = (zipfile.BadZipFile, OSError, EOFError, *INFLATE_ERRORS)

# A field may be as long as a record may be.
csv.field_size_limit(MAX_RECORD_BYTES)


@dataclass(frozen=True)
class TableFiles:
    """The members of one table in an export."""

    schema: TableSchema
    rows: str
    deleted: str


class ExportArchive:
    """An opened, checked table-export zip."""

    def __init__(self, handle: BinaryIO, where: str, manifest: Manifest) -> None:
        self.where = where
        self.manifest = manifest
        try:
            self.zip = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError) as error:
            raise LoadError(f"{where}: not a readable zip ({error})") from None
        self.infos = self._checked_members(manifest.member_bytes())
        if SCHEMA_MEMBER not in self.infos:
            raise self._error(f"has no {SCHEMA_MEMBER}")
        self.schema_version, schemas = _schema(self, f"{where}/{SCHEMA_MEMBER}")
        self.all_schemas = schemas
        by_name = {schema.name: schema for schema in schemas}
        self.tables: list[TableFiles] = []
        expected = {SCHEMA_MEMBER}
        for entry in manifest.tables:
            if entry.name not in by_name:
                raise self._error(f"lists table {entry.name!r}, which its schema does not describe")
            deleted = entry.file.removesuffix(".csv") + ".deleted.csv"
            self.tables.append(TableFiles(by_name[entry.name], entry.file, deleted))
            expected.add(entry.file)
            if entry.deleted:
                expected.add(deleted)
        expected |= {sha1_name(name) for name in expected}
        extra = sorted(set(self.infos) - expected)
        missing = sorted(expected - set(self.infos))
        if extra:
            raise self._error(f"holds {extra[0]!r}, which its manifest does not list")
        if missing:
            raise self._error(f"lacks {missing[0]!r}, which its manifest lists")
        if manifest.schema_version != self.schema_version:
            raise self._error("its schema version differs from its manifest's")

    def _error(self, message: str) -> LoadError:
        return LoadError(f"{self.where}: {message}", "the export was altered: export it again")

    def _checked_members(self, recorded: dict[str, int]) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in self.zip.infolist():
            name = info.filename
            if (
                not name
                or "/" in name
                or "\\" in name
                or name.startswith(".")
                or ":" in name
                or any(ord(c) < 32 for c in name)
            ):
                raise self._error(f"holds a member with an unsafe name {name!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise self._error(f"holds a link {name!r}")
            if name in infos:
                raise self._error(f"holds {name!r} twice")
            if recorded and recorded.get(name) != info.file_size:
                says = f"says {recorded[name]:,}" if name in recorded else "does not list it"
                raise self._error(
                    f"member {name!r} would inflate to {info.file_size:,} bytes, "
                    f"its manifest {says}"
                )
            infos[name] = info
        return infos

    def digest(self, name: str) -> str:
        """The sha1 a member's `.sha1` member gives it."""
        data = self._read_small(sha1_name(name))
        try:
            return parse_sha1_line(data, name, f"{self.where}/{sha1_name(name)}")
        except Exception as error:
            raise self._error(str(error)) from None

    def _read_small(self, name: str) -> bytes:
        with self.zip.open(self.infos[name]) as member:
            data = member.read(SHA1_FILE_BYTES + 1)
        return data

    def chunks(self, name: str) -> Iterator[bytes]:
        """A member's bytes, streamed; its sha1 checked at the end (an error then means
        nothing read from it may be kept)."""
        expected = self.digest(name)
        sha1 = hashlib.sha1()
        info = self.infos[name]
        inflated = 0
        try:
            with self.zip.open(info) as member:
                if info.compress_type == zipfile.ZIP_DEFLATED:
                    # The zip library makes its own zlib decompressor; swap in the fastest
                    # one before the first byte (as the writer does with its compressor).
                    member._decompressor = inflater()  # type: ignore[attr-defined]
                while chunk := member.read(CHUNK):
                    inflated += len(chunk)
                    if inflated > info.file_size:  # the zip library stops there; so do we
                        raise self._error(f"member {name!r} inflates past its size")
                    sha1.update(chunk)
                    yield chunk
        except _DAMAGED as error:
            raise self._error(f"member {name!r} is damaged ({error})") from None
        if sha1.hexdigest() != expected:
            raise self._error(f"member {name!r} does not match its sha1")

    def body(self, member: str, columns: Sequence[str]) -> Iterator[bytes]:
        """The member's bytes after its header line, which must name `columns`; no record
        may be longer than MAX_RECORD_BYTES."""
        where = f"{self.where}/{member}"
        chunks = _record_bounded(self._utf8(self.chunks(member)), where)
        head = b""
        while b"\n" not in head and len(head) <= MAX_HEADER_BYTES:
            chunk = next(chunks, None)
            if chunk is None:
                break
            head += chunk
        header, _, rest = head.partition(b"\n")
        try:
            names = next(csv.reader([header.decode("utf-8")]), [])
        except UnicodeDecodeError:
            raise LoadError(f"{where}: not UTF-8 text") from None
        self.check_header(member, names, columns)
        if rest:
            yield rest
        yield from chunks

    def _growth(self) -> int:
        """How many times its recorded length a record may be once read: twice, so that a
        block holds it whole; four times more once transcoded to UTF-8 (`_utf8`)."""
        return 2 if codecs.lookup(self.manifest.encoding).name == "utf-8" else 8

    def _utf8(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """A member's chunks as UTF-8 (every loader reads that): transcoded from the
        encoding the manifest names, a `utf-8-sig` mark dropped."""
        encoding = codecs.lookup(self.manifest.encoding).name
        if encoding == "utf-8":
            yield from chunks
            return
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            for chunk in chunks:
                yield decoder.decode(chunk).encode("utf-8")
            yield decoder.decode(b"", final=True).encode("utf-8")
        except UnicodeDecodeError:
            raise LoadError(
                f"{self.where}: a member is not {self.manifest.encoding} text"
            ) from None

    def check_header(self, member: str, header: list[str] | None, columns: Sequence[str]) -> None:
        """A CSV member's header must name exactly the columns the schema gives it."""
        if header != list(columns):
            shown = repr(header)
            if len(shown) > 200:  # a hostile header could be a gigabyte
                shown = f"{shown[:200]}…"
            raise LoadError(
                f"{self.where}/{member}: its header {shown} is not the table's columns "
                f"{list(columns)!r}",
                "the export was altered: export it again",
            )

    def rows(self, name: str, columns: Sequence[str]) -> Iterator[list[Any]]:
        """A CSV member's records after its header (which must name `columns`), each a
        list of its fields: None for NULL (an empty field), "" for the empty string
        (`""`), else the text. Read by Arrow's CSV reader in blocks larger than the
        longest record the export recorded, so memory follows the data's own rows."""
        where = f"{self.where}/{name}"
        for batch in self._batches(name, columns, where):
            for start in range(0, batch.num_rows, ROWS_AT_ONCE):
                # A slice at a time: fewer of the rows' Python objects alive at once.
                piece = batch.slice(start, ROWS_AT_ONCE)
                fields = [column.to_pylist() for column in piece.columns]
                yield from map(list, zip(*fields, strict=True))

    def batches(self, name: str, columns: Sequence[str]) -> Iterator[Any]:
        """A CSV member's records as Arrow record batches of strings (named `columns`,
        NULL for an empty field, "" for `""`), for targets that take Arrow whole."""
        return self._batches(name, columns, f"{self.where}/{name}")

    def _batches(self, name: str, columns: Sequence[str], where: str) -> Iterator[Any]:
        import pyarrow as pa
        from pyarrow import csv as arrow_csv

        longest = self.manifest.longest_record(name) or UNRECORDED_LONGEST
        body = self.body(name, columns)
        first = next(body, None)
        if first is None:
            return  # the header alone: no records (Arrow calls that an empty file)
        raw = io.BufferedReader(_ChunkReader(itertools.chain([first], body)), CHUNK)
        options = {
            "read_options": arrow_csv.ReadOptions(
                column_names=list(columns),
                block_size=min(max(self._growth() * longest, CHUNK), 2**31 - 1),
                use_threads=False,
            ),
            "parse_options": arrow_csv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False
            ),
            "convert_options": arrow_csv.ConvertOptions(
                column_types={column: pa.string() for column in columns},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],
            ),
        }
        try:
            yield from arrow_csv.open_csv(raw, **options)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise csv_error(where, error) from None

    def close(self) -> None:
        self.zip.close()


_WIDTH = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+)")


def csv_error(where: str, error: Exception) -> LoadError:
    """The one-line error for a CSV member that cannot be read."""
    text = " ".join(str(error).split())
    if isinstance(error, UnicodeDecodeError) or "UTF8" in text or "UTF-8" in text:
        return LoadError(f"{where}: not UTF-8 text")
    width = _WIDTH.search(text)
    if width:  # Arrow's parser counts from 1 the records after the header
        row, expected, got = (int(group) for group in width.groups())
        return LoadError(f"{where}: record {row} has {got} fields, not {expected}")
    if len(text) > 200:  # the parser's message quotes the record, which may be huge
        text = text[:200] + "…"
    return LoadError(f"{where}: not valid CSV ({text})")


def _schema(archive: ExportArchive, where: str) -> tuple[str, list[TableSchema]]:
    if archive.infos[SCHEMA_MEMBER].file_size > MAX_SCHEMA_BYTES:
        raise archive._error(f"{SCHEMA_MEMBER} is larger than {MAX_SCHEMA_BYTES:,} bytes")
    data = b"".join(archive.chunks(SCHEMA_MEMBER))
    try:
        return parse_schema_document(data, where)
    except Exception as error:
        raise LoadError(str(error), "the export was altered: export it again") from None


def _record_bounded(chunks: Iterator[bytes], where: str) -> Iterator[bytes]:
    """The same chunks, refused as soon as a record runs past MAX_RECORD_BYTES."""
    meter = csvrows.RecordMeter(MAX_RECORD_BYTES)
    for chunk in chunks:
        try:
            meter.feed(chunk)
        except csvrows.RecordTooLong as error:
            raise LoadError(f"{where}: {error}") from None
        yield chunk


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (for TextIOWrapper); a chunk is
    handed out through a memoryview, never copied piecewise."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.rest:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.rest = memoryview(chunk)
        size = min(len(buffer), len(self.rest))
        buffer[:size] = self.rest[:size]
        self.rest = self.rest[size:]
        return size
