"""Names of table-export folders and files: one `format()` and one `parse()` each.

    export_<K>_<YYYY_MM_DD_HH_MI_SS>/
        export_<K>_<YYYY_MM_DD_HH_MI_SS>.zip
        export_<K>_<YYYY_MM_DD_HH_MI_SS>.zip.sha1
        export_<K>_<YYYY_MM_DD_HH_MI_SS>.extracted.xml

K is the export's high-water-mark audit key; the time is the greatest data time of this
export and every export before it, in UTC, to the second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from tidegate.errors import FormatError

# ASCII digits only: `\d` alone also matches other scripts' digits, which int() reads, so
# a folder could name an export it is not.
_PATTERN = re.compile(r"export_(\d{1,19})_(\d{4})_(\d\d)_(\d\d)_(\d\d)_(\d\d)_(\d\d)", re.ASCII)
_LOOKALIKE = re.compile(r"export_\d+_\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d")
MAX_AUDIT_KEY = 2**63 - 1


@dataclass(frozen=True, order=True)
class ExportName:
    """The name shared by an export's folder and its files.

    Ordered by audit key first, which is the order exports must be applied in.
    """

    audit_key: int
    max_data_time: datetime

    def __post_init__(self) -> None:
        if not 0 <= self.audit_key <= MAX_AUDIT_KEY:
            raise ValueError("audit key must be from 0 to 2**63 - 1")
        if self.max_data_time.tzinfo is None:
            raise ValueError("max_data_time must be timezone-aware")

    def format(self) -> str:
        """`export_<K>_<YYYY_MM_DD_HH_MI_SS>`."""
        stamp = self.max_data_time.astimezone(UTC).strftime("%Y_%m_%d_%H_%M_%S")
        return f"export_{self.audit_key}_{stamp}"

    @property
    def zip_name(self) -> str:
        return f"{self.format()}.zip"

    @property
    def zip_sha1_name(self) -> str:
        return f"{self.format()}.zip.sha1"

    @property
    def manifest_name(self) -> str:
        return f"{self.format()}.extracted.xml"

    @staticmethod
    def parse(name: str) -> ExportName:
        """Parse a folder name (or a file name's stem).

        Raises:
            FormatError: the name is not an export name.
        """
        match = _PATTERN.fullmatch(name)
        if not match and looks_like_export(name):
            raise FormatError(
                f"{name!r} holds digits that are not ASCII, or an audit key out of range",
                "export folders are named export_<K>_<YYYY_MM_DD_HH_MI_SS> in ASCII digits",
            )
        if not match:
            raise FormatError(
                f"{name!r} is not an export name",
                "export folders are named export_<K>_<YYYY_MM_DD_HH_MI_SS>",
            )
        key, year, month, day, hour, minute, second = map(int, match.groups())
        if key > MAX_AUDIT_KEY:
            raise FormatError(f"{name!r}: its audit key is out of range (at most {MAX_AUDIT_KEY})")
        try:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            raise FormatError(f"{name!r} has an impossible date") from None
        return ExportName(key, moment)


def looks_like_export(name: str) -> bool:
    """Whether a name has the shape of an export's, in digits of any script (so that one
    that does not parse is reported as a damaged export, not passed over as a stranger)."""
    return _LOOKALIKE.fullmatch(name) is not None


# Characters a table name may hold that a file name must not: path separators, characters
# Windows forbids, "%" (the escape itself) and control characters.
_UNSAFE = set('/\\:*?"<>|%') | {chr(code) for code in range(32)} | {chr(127)}


def file_safe(table: str) -> str:
    """A table name as a file name: unsafe characters %-escaped, as in URLs.

    Ordinary names (letters, digits, "_", spaces, unicode) are kept as they are. A leading
    "." is escaped too, so no member is hidden or names "." or "..".
    """
    escaped = "".join(f"%{ord(c):02X}" if c in _UNSAFE else c for c in table)
    if escaped.startswith("."):
        escaped = "%2E" + escaped[1:]
    return escaped


def member_name(table: str) -> str:
    """The CSV member of a table inside the zip."""
    return f"{file_safe(table)}.csv"


def deleted_member_name(table: str) -> str:
    """The CSV member listing the deleted keys of a table."""
    return f"{file_safe(table)}.deleted.csv"


def sha1_name(file_name: str) -> str:
    """The checksum file beside a file."""
    return f"{file_name}.sha1"


SCHEMA_MEMBER = "tidegate.schema.json"
"""The zip member describing every exported table (columns, types, keys)."""


EntityExportKind = Literal["INIT_EXPORT", "INC_EXPORT"]


@dataclass(frozen=True)
class EntityFileName:
    """An entity-export file name (<n> = thread count, <time> = YYYYMMDDHHMMSS):

        INIT_EXPORT[_<prefix>]_<ENTITY>_<run>_<thread>_<n>_<time>[_<seq>].json.gz
        INC_EXPORT_<run>_<thread>_<n>_<time>[_<seq>].json.gz

    `seq` appears from a thread's second file on, starting at 2.
    """

    kind: EntityExportKind
    run: int
    thread: int
    threads: int
    stamp: datetime
    seq: int = 1
    subject: str = ""  # "[<prefix>_]<ENTITY>" of an initial export; "" for ongoing

    def format(self) -> str:
        parts: list[str] = [self.kind]
        if self.kind == "INIT_EXPORT":
            parts.append(self.subject)
        parts += [
            str(self.run),
            str(self.thread),
            str(self.threads),
            self.stamp.astimezone(UTC).strftime("%Y%m%d%H%M%S"),
        ]
        if self.seq > 1:
            parts.append(str(self.seq))
        return "_".join(parts) + ".json.gz"

    @staticmethod
    def initial_subject(entity: str, prefix: str = "") -> str:
        subject = f"{prefix}_{entity}" if prefix else entity
        return file_safe(subject)  # a name with "/" or a leading "." stays one file name

    @staticmethod
    def parse(name: str) -> EntityFileName:
        """Parse a file name (the prefix and the entity stay joined in `subject`, as the
        name alone cannot tell them apart; the run's manifest names the entity).

        Raises:
            FormatError: not an entity-export file name.
        """
        match = _ENTITY_FILE.fullmatch(name)
        if not match:
            raise FormatError(f"{name!r} is not an entity-export file name")
        kind, subject, run, thread, threads, stamp, seq = match.groups()
        if (kind == "INIT_EXPORT") != bool(subject):
            raise FormatError(f"{name!r} is not an entity-export file name")
        try:
            moment = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            raise FormatError(f"{name!r} has an impossible date") from None
        return EntityFileName(
            "INIT_EXPORT" if kind == "INIT_EXPORT" else "INC_EXPORT",
            int(run),
            int(thread),
            int(threads),
            moment,
            int(seq) if seq else 1,
            subject or "",
        )


# The subject (prefix and entity) is any text without a path separator or a leading dot;
# the fixed fields after it are matched from the end.
_ENTITY_FILE = re.compile(
    r"(INIT_EXPORT|INC_EXPORT)(?:_([^/\\.][^/\\]*?))?_(\d+)_(\d+)_(\d+)_(\d{14})(?:_(\d+))?"
    r"\.json\.gz",
    re.ASCII,
)
