"""The `.extracted.xml` manifest of a table export: write and read.

The six elements of the established format come first, with their names unchanged, so
existing consumers keep working; tidegate's own elements follow, each named `tidegate-*`.
All times are whole UTC seconds since 1970.

    <info>
    <created-ts>1521091600</created-ts>
    <gim-schema-version>3f2a…</gim-schema-version>
    <gim-version>0.2.0</gim-version>
    <hwm-from audit-key="13" created-ts="1520919983"/>
    <hwm-to audit-key="200074" created-ts="1520995485"/>
    <max-data-ts>1521006157</max-data-ts>
    <tidegate-export kind="incremental" stream="1" sequence="7" min-data-ts="…"
        encoding="utf-8"/>   (the CSV members' encoding, [output] encoding)
    <tidegate-restart mode="reexport" since-ts="…"/>        (only after a restart option)
    <tidegate-table name="customer" file="customer.csv" rows="10" deleted="2"/>   (per table;
        whole="true" when the file holds every row of the table, as in a snapshot)
    <tidegate-member name="customer.csv" bytes="5120" longest="80"/>   (per zip member: its
        size inflated; for a CSV member, a bound on the length of its records)
    <tidegate-shape-change table="orders" outcome="migrated"/>   (per table whose shape
        changed in the source since the export before: "migrated" (its rows merge into the
        table widened or given the new columns), "whole" (exported whole, to replace the
        table) or "ended" (dropped or renamed: no more changes of it follow))
    </info>
"""

from __future__ import annotations

import codecs
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from xml.sax.saxutils import quoteattr

from tidegate.errors import FormatError

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""The most a manifest is read of: one of ten thousand tables is a megabyte or two."""
MAX_COUNT = 2**63 - 1
"""Audit keys, sequence numbers and counts fit a signed 64-bit integer, as in the source."""
_EARLIEST = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
_LATEST = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())

ExportKind = Literal["snapshot", "incremental"]
RestartMode = Literal["beginning", "from", "reexport"]
ShapeOutcome = Literal["migrated", "whole", "ended"]
SHAPE_OUTCOMES = ("migrated", "whole", "ended")


@dataclass(frozen=True)
class HighWaterMark:
    """An audit key and the time its claim was made."""

    audit_key: int
    created: datetime


@dataclass(frozen=True)
class TableEntry:
    """One table's files in an export."""

    name: str
    file: str
    rows: int
    deleted: int
    whole: bool = False


@dataclass(frozen=True)
class MemberSize:
    """One member of the export's zip and its size once inflated, which bounds how much a
    reader inflates of it."""

    name: str
    bytes: int
    longest: int | None = None  # CSV members: no record is longer (bytes, line end included)


@dataclass(frozen=True)
class ShapeChange:
    """A table whose shape changed in the source, and what the export did about it."""

    table: str
    outcome: ShapeOutcome


@dataclass(frozen=True)
class Manifest:
    """Everything the `.extracted.xml` of one export says."""

    created: datetime
    schema_version: str
    tidegate_version: str
    hwm_from: HighWaterMark
    hwm_to: HighWaterMark
    max_data_time: datetime
    kind: ExportKind
    stream: int
    sequence: int
    min_data_time: datetime
    restart: RestartMode | None = None
    since: datetime | None = None
    tables: tuple[TableEntry, ...] = field(default=())
    members: tuple[MemberSize, ...] = field(default=())  # empty in exports of tidegate 0.1
    encoding: str = "utf-8"  # the CSV members' encoding
    shape_changes: tuple[ShapeChange, ...] = field(default=())

    def member_bytes(self) -> dict[str, int]:
        """Each member's inflated size, by name (empty when the manifest lists none)."""
        return {member.name: member.bytes for member in self.members}

    def longest_record(self, name: str) -> int | None:
        """The bound the export recorded on a CSV member's records, if it did."""
        return next((m.longest for m in self.members if m.name == name), None)


def _ts(moment: datetime) -> str:
    return str(int(moment.astimezone(UTC).timestamp()))


def _attr(name: str, value: str) -> str:
    return f"{name}={quoteattr(value)}"


def render(manifest: Manifest) -> bytes:
    """The manifest as UTF-8 XML, one element per line."""
    m = manifest
    lines = [
        "<info>",
        f"<created-ts>{_ts(m.created)}</created-ts>",
        f"<gim-schema-version>{m.schema_version}</gim-schema-version>",
        f"<gim-version>{m.tidegate_version}</gim-version>",
        f'<hwm-from audit-key="{m.hwm_from.audit_key}" created-ts="{_ts(m.hwm_from.created)}"/>',
        f'<hwm-to audit-key="{m.hwm_to.audit_key}" created-ts="{_ts(m.hwm_to.created)}"/>',
        f"<max-data-ts>{_ts(m.max_data_time)}</max-data-ts>",
        f'<tidegate-export kind="{m.kind}" stream="{m.stream}" sequence="{m.sequence}" '
        f'min-data-ts="{_ts(m.min_data_time)}" {_attr("encoding", m.encoding)}/>',
    ]
    if m.restart is not None:
        since = f' since-ts="{_ts(m.since)}"' if m.since is not None else ""
        lines.append(f'<tidegate-restart mode="{m.restart}"{since}/>')
    for table in m.tables:
        attributes = " ".join(
            [
                _attr("name", table.name),
                _attr("file", table.file),
                _attr("rows", str(table.rows)),
                _attr("deleted", str(table.deleted)),
            ]
        )
        if table.whole:
            attributes += ' whole="true"'
        lines.append(f"<tidegate-table {attributes}/>")
    for member in m.members:
        longest = f' longest="{member.longest}"' if member.longest is not None else ""
        lines.append(
            f"<tidegate-member {_attr('name', member.name)} "
            f"{_attr('bytes', str(member.bytes))}{longest}/>"
        )
    for change in m.shape_changes:
        lines.append(
            f'<tidegate-shape-change {_attr("table", change.table)} outcome="{change.outcome}"/>'
        )
    lines.append("</info>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse(data: bytes, where: str) -> Manifest:
    """Read a manifest; `where` names the file in errors.

    Raises:
        FormatError: not a manifest, or a required element is missing or malformed.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise FormatError(f"{where}: not valid XML: {error}") from None
    if root.tag != "info":
        raise FormatError(f"{where}: the root element is <{root.tag}>, not <info>")

    def element(tag: str) -> ET.Element:
        found = root.find(tag)
        if found is None:
            raise FormatError(f"{where}: <{tag}> is missing")
        return found

    def number(text: str | None, what: str, least: int = 0, most: int = MAX_COUNT) -> int:
        text = text or ""
        digits = text.removeprefix("-") if least < 0 else text
        if not (digits.isascii() and digits.isdigit()):
            raise FormatError(f"{where}: {what} is not a whole number: {text[:40]!r}")
        if len(digits) > 20 or not least <= int(text) <= most:
            shown = text if len(text) <= 24 else f"{text[:20]}…"
            raise FormatError(f"{where}: {what} {shown} is out of range ({least} to {most})")
        return int(text)

    def moment(text: str | None, what: str) -> datetime:
        return datetime.fromtimestamp(number(text, what, _EARLIEST, _LATEST), UTC)

    def mark(tag: str) -> HighWaterMark:
        node = element(tag)
        return HighWaterMark(
            number(node.get("audit-key"), f"<{tag}> audit-key"),
            moment(node.get("created-ts"), f"<{tag}> created-ts"),
        )

    hwm_from, hwm_to = mark("hwm-from"), mark("hwm-to")
    if hwm_to.audit_key < hwm_from.audit_key:
        raise FormatError(
            f"{where}: hwm-to audit-key {hwm_to.audit_key} is below hwm-from {hwm_from.audit_key}"
        )
    export = element("tidegate-export")
    encoding = export.get("encoding") or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise FormatError(f"{where}: unknown encoding {encoding[:40]!r}") from None
    kind = export.get("kind")
    if kind not in ("snapshot", "incremental"):
        raise FormatError(f"{where}: unknown export kind {kind!r}")
    restart_node = root.find("tidegate-restart")
    restart = restart_node.get("mode") if restart_node is not None else None
    if restart not in (None, "beginning", "from", "reexport"):
        raise FormatError(f"{where}: unknown restart mode {restart!r}")
    since_text = restart_node.get("since-ts") if restart_node is not None else None
    tables = tuple(
        TableEntry(
            node.get("name") or "",
            node.get("file") or "",
            number(node.get("rows"), "rows"),
            number(node.get("deleted"), "deleted"),
            node.get("whole") == "true",
        )
        for node in root.findall("tidegate-table")
    )
    members = tuple(
        MemberSize(
            node.get("name") or "",
            number(node.get("bytes"), "<tidegate-member> bytes"),
            None
            if node.get("longest") is None
            else number(node.get("longest"), "<tidegate-member> longest"),
        )
        for node in root.findall("tidegate-member")
    )
    if len({member.name for member in members}) != len(members):
        raise FormatError(f"{where}: a <tidegate-member> is listed twice")
    shape_changes = []
    for node in root.findall("tidegate-shape-change"):
        outcome = node.get("outcome")
        if outcome not in SHAPE_OUTCOMES:
            raise FormatError(f"{where}: unknown <tidegate-shape-change> outcome {outcome!r}")
        shape_changes.append(ShapeChange(node.get("table") or "", outcome))  # type: ignore[arg-type]
    return Manifest(
        created=moment(element("created-ts").text, "<created-ts>"),
        schema_version=element("gim-schema-version").text or "",
        tidegate_version=element("gim-version").text or "",
        hwm_from=hwm_from,
        hwm_to=hwm_to,
        max_data_time=moment(element("max-data-ts").text, "<max-data-ts>"),
        kind=kind,  # type: ignore[arg-type]
        stream=number(export.get("stream"), "stream"),
        sequence=number(export.get("sequence"), "sequence"),
        min_data_time=moment(export.get("min-data-ts"), "min-data-ts"),
        restart=restart,  # type: ignore[arg-type]
        since=moment(since_text, "since-ts") if since_text is not None else None,
        tables=tables,
        members=members,
        encoding=encoding,
        shape_changes=tuple(shape_changes),
    )
