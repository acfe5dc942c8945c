"""How values become CSV text in a table export, one rule per kind of value.

RFC 4180 fields (comma separated, double-quote quoting when a field holds a comma, a quote,
CR or LF), records ended by LF, a header line of column names first. NULL is an empty
field, the empty string `""` (as PostgreSQL's COPY writes them), so a reader that does not
care sees both as an empty field, and one that does can tell them apart.

| value | text |
|---|---|
| integer | decimal digits |
| exact numeric | every digit, never an exponent (`12345678901234567.89`) |
| float | shortest text that reads back to the same float (`0.1`); `NaN`, `Infinity` |
| boolean | `true` / `false` |
| date | `YYYY-MM-DD` |
| time | `HH:MM:SS`, then `.` and the fraction of a second without trailing zeros, if any |
| timestamp without time zone | `YYYY-MM-DD HH:MM:SS[.fraction]`, as stored |
| timestamp with time zone | the same in UTC, then `+00` |
| bytes | lowercase hex |
| JSON document | its JSON text |

This is how PostgreSQL prints these types (DateStyle ISO, TimeZone UTC), so its COPY output
needs no reformatting; the row path (MySQL, deleted keys) formats the same text here.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import orjson

LINE_END = "\n"
ROWS_PER_CHUNK = 2_000


def value_text(value: object) -> str | None:
    """The CSV text of one value; None for NULL."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return (
                value.astimezone(UTC)
                .replace(tzinfo=None)
                .isoformat(sep=" ", timespec="microseconds")
                + "+00:00"
            )
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if isinstance(value, timedelta):  # MySQL returns TIME columns as durations
        return _duration_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _clock(value: datetime | time) -> str:
    """ISO date-time or time, seconds always, the fraction only as far as it is not zero."""
    text = (
        value.replace(microsecond=0).isoformat(sep=" ")
        if isinstance(value, datetime)
        else value.replace(microsecond=0).isoformat()
    )
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    return text


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _duration_text(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    micros = abs(value) // timedelta(microseconds=1)
    seconds, micro = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{micro:06d}"


class _Records:
    """The file a csv.writer writes to: one call per record, its CRLF turned into LF.

    The writer is told records end in CRLF so that it quotes fields holding a CR as well as
    those holding an LF (RFC 4180); it writes each record in one call, so the terminator is
    always the last two characters.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, record: str) -> int:
        self.parts.append(record[:-2] + LINE_END)
        return len(record)

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        return text


def _writer(records: _Records) -> Any:
    return csv.writer(records, lineterminator="\r\n")


def header(columns: Sequence[str]) -> str:
    """The header line, ended."""
    records = _Records()
    _writer(records).writerow(columns)
    return records.take()


def csv_chunks(
    columns: Sequence[str], rows: Iterable[Sequence[object]], counter: list[int] | None = None
) -> Iterator[str]:
    """CSV text in chunks of a few thousand rows: header first, then every row.

    Args:
        columns: column names, for the header.
        rows: the rows, values in column order.
        counter: if given, its first item is increased by the number of rows written.
    """
    yield header(columns)
    records = _Records()
    writer = _writer(records)
    pending = 0
    for row in rows:
        texts = [value_text(value) for value in row]
        if "" in texts:  # the writer would leave an empty string unquoted, as it does NULL
            records.parts.append(_record_with_empty_strings(texts))
        else:
            writer.writerow(texts)
        pending += 1
        if pending == ROWS_PER_CHUNK:
            # Counted before the yield: a consumer may stop after the last chunk.
            if counter is not None:
                counter[0] += pending
            yield records.take()
            pending = 0
    if pending:
        if counter is not None:
            counter[0] += pending
        yield records.take()


def _record_with_empty_strings(texts: Sequence[str | None]) -> str:
    """A record written field by field: `""` for an empty string, an empty field for
    NULL, RFC 4180 quoting where a field needs it."""
    return ",".join(_field(text) for text in texts) + LINE_END


def _field(text: str | None) -> str:
    if text is None:
        return ""
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


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


MAX_VALUE_BYTES = 1024**3
"""The largest value any supported source holds: PostgreSQL's limit of a field (1 GB),
MariaDB's largest `max_allowed_packet`, SQLite's default SQLITE_MAX_LENGTH (10^9). The
same limits bound a whole row: PostgreSQL's COPY builds each line in one buffer of at most
1 GB, and a SQLite record or a MariaDB row packet is itself one such value."""
MAX_RECORD_BYTES = 2 * MAX_VALUE_BYTES + 1024**2
"""The longest CSV record an honest export holds: a row of at most MAX_VALUE_BYTES, at
most doubled once written (bytes as hex, a quote as two), with room for the separators."""


class RecordTooLong(ValueError):
    """A CSV record runs past the limit a `RecordMeter` was given."""


class RecordMeter:
    """Bounds the records of a CSV byte stream cut anywhere, in C-speed steps per chunk:
    `feed` raises RecordTooLong once the record still open at a chunk's end, or the first
    one a chunk ends, has run past ``limit`` bytes. A record ends at a line end outside
    double quotes, so a value holding line ends stays one record.

    A record wholly inside one chunk is not measured: it is no longer than the chunk, and
    the chunk is already in memory. So `longest`, an upper bound of every record's length
    fed so far, is the longest record that crossed a chunk's end, or the longest chunk.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.quoted = False  # inside a quoted field at the end of the last chunk
        self.open = 0  # bytes of the record still open at the end of the last chunk
        self.longest = 0

    def feed(self, chunk: bytes) -> None:
        quoted_at_end = self.quoted != bool(chunk.count(b'"') % 2)
        first = self._first_end(chunk)
        self.longest = max(self.longest, len(chunk))
        if first < 0:
            self.open += len(chunk)
        elif self.open + first + 1 > self.limit:
            self.open += first + 1
        else:
            self.longest = max(self.longest, self.open + first + 1)
            self.open = len(chunk) - self._last_end(chunk, quoted_at_end) - 1
        self.quoted = quoted_at_end
        if self.open > self.limit:
            raise RecordTooLong(f"a record is longer than {self.limit:,} bytes")
        self.longest = max(self.longest, self.open)

    def _first_end(self, chunk: bytes) -> int:
        """The offset of the first line end outside quotes, or -1."""
        quoted, start = self.quoted, 0
        end = chunk.find(b"\n")
        while end >= 0:
            quoted ^= bool(chunk.count(b'"', start, end) % 2)
            if not quoted:
                return end
            start, end = end, chunk.find(b"\n", end + 1)
        return -1

    @staticmethod
    def _last_end(chunk: bytes, quoted_at_end: bool) -> int:
        """The offset of the last line end outside quotes (one exists: `_first_end`)."""
        quoted, stop = quoted_at_end, len(chunk)
        end = chunk.rfind(b"\n")
        while True:
            quoted ^= bool(chunk.count(b'"', end + 1, stop) % 2)
            if not quoted:
                return end
            stop, end = end + 1, chunk.rfind(b"\n", 0, end)
