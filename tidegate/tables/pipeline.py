"""Streams of CSV chunks between a reader and the zip: their encoding."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator

from tidegate.errors import ExportError
from tidegate.prefetch import close_iterator
from tidegate.tables.schema import TableSpec


def non_empty(chunks: Iterator[bytes]) -> Iterator[bytes] | None:
    """The same chunks, or None when there are none."""
    first = next(chunks, None)
    if first is None:
        return None

    def again() -> Iterator[bytes]:
        yield first
        yield from chunks

    return again()


def transcoded(chunks: Iterator[bytes], encoding: str, spec: TableSpec) -> Iterator[bytes]:
    """UTF-8 CSV chunks in the output encoding.

    Raises:
        ExportError: a value cannot be written in that encoding; names table, column, key.
    """
    try:
        if codecs.lookup(encoding).name == "utf-8":
            yield from chunks
            return
        # One encoder for the whole member: `utf-8-sig` writes its mark once, at the start.
        encoder = codecs.getincrementalencoder(encoding)()
        for chunk in chunks:
            text = chunk.decode("utf-8")
            try:
                yield encoder.encode(text)
            except UnicodeEncodeError:
                raise _unencodable(text, encoding, spec) from None
    finally:
        close_iterator(chunks)


def _unencodable(text: str, encoding: str, spec: TableSpec) -> ExportError:
    """Find the first value of a chunk that the encoding cannot hold."""
    columns = [c.name for c in spec.columns]
    for record in csv.reader(io.StringIO(text)):
        if record == columns:
            continue
        for column, value in zip(columns, record, strict=False):
            try:
                value.encode(encoding)
            except UnicodeEncodeError:
                key = {
                    k: record[columns.index(k)]
                    for k in spec.primary_key
                    if k in columns and columns.index(k) < len(record)
                }
                return ExportError(
                    f"table {spec.name!r}, column {column!r}, key {key}: the value cannot be "
                    f"written in the output encoding {encoding!r}",
                    'set [output] encoding = "utf-8", or correct the value in the source',
                )
    for column in columns:
        try:
            column.encode(encoding)
        except UnicodeEncodeError:
            return ExportError(
                f"table {spec.name!r}: the column name {column!r} cannot be written in the "
                f"output encoding {encoding!r}",
                'set [output] encoding = "utf-8"',
            )
    return ExportError(f"table {spec.name!r}: a value cannot be written in {encoding!r}")
