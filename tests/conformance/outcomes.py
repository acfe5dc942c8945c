"""The outcome of each cell of the matrix (source type x target x export kind), and the
rules that decide it.

- EXACT: every value in the target equals the source's (for entity exports: equals what
  the entity format's contract makes of it, see `entity_contract`).
- REFUSED: the export or the load stopped before writing anything, in one line naming
  the table, the column and its type, with a hint saying what to do (SPEC, "Value
  fidelity").
- WRONG: a value differs, or a row is missing or extra.
- FAILED: any other error (mid-load, unexpected, or a line that does not name table,
  column and type), or a table that a load said it applied but is not in the target.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tidegate.errors import TidegateError

EXACT, REFUSED, WRONG, FAILED = "EXACT", "REFUSED", "WRONG", "FAILED"
ACCEPTABLE = (EXACT, REFUSED)
KINDS = ("tables", "entities")  # table export, entity export


@dataclass(frozen=True)
class Cell:
    """One source column through one export kind into one target."""

    source: str
    target: str
    kind: str
    table: str
    column: str
    sql_type: str
    outcome: str
    target_type: str = ""
    detail: str = ""  # what differs, or the error line
    contract_loss: str = ""  # entity export: what the format's contract itself changes

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.source, self.target, self.kind, f"{self.table}.{self.column}")

    def line(self) -> str:
        """The cell on one line, for assertion messages and reports."""
        typed = f" as {self.target_type}" if self.target_type else ""
        return (
            f"{self.source} -> {self.target} ({self.kind}) {self.table}.{self.column} "
            f"{self.sql_type}{typed}: {self.outcome}: {self.detail}"
        )


@dataclass(frozen=True)
class Failure:
    """An error that stopped a step of an export or a load."""

    step: str
    message: str
    deliberate: bool  # raised by tidegate on purpose (a TidegateError), not an accident
    hint: str = ""

    @classmethod
    def of(cls, step: str, error: BaseException) -> Failure:
        if isinstance(error, TidegateError):
            return cls(step, str(error), True, error.hint)
        return cls(step, f"{type(error).__name__}: {error}", False)

    def line(self) -> str:
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        kind = "" if self.deliberate else "unexpected "
        more = " (more lines follow)" if "\n" in self.message.strip() else ""
        return f"{self.step}: {kind}{first[:300]}{more}"


def names(message: str, word: str) -> bool:
    """Whether a message names `word` as a word of its own (not inside another)."""
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", message, re.IGNORECASE) is not None


# A database's own error passed on with the statement it was about (PostgreSQL's `LINE 1:`,
# SQLAlchemy's `[SQL: …]`) names whatever the statement names: it is no refusal.
_ECHOED_SQL = re.compile(r"\bLINE \d+:|\[SQL: ")


def failure_outcome(failure: Failure, table: str, columns: Sequence[Any], written: bool) -> str:
    """REFUSED when tidegate refused on purpose, in one line naming the table and one of
    its columns with that column's type, with a hint, and nothing was written; FAILED
    otherwise. `columns` are the table's catalog columns (`name`, `type_word`)."""
    message = failure.message
    refusal = (
        failure.deliberate
        and bool(failure.hint)
        and "\n" not in message.strip()
        and not _ECHOED_SQL.search(message)
    )
    named = names(message, table) and (
        any(names(message, column.name) and names(message, column.type_word) for column in columns)
        # Two tables whose names the target cannot tell apart: the refusal is about the
        # table, not a column.
        or "differ only in case" in message
    )
    return REFUSED if refusal and named and not written else FAILED


def entity_contract(kind: str, value: Any, nullable: bool) -> Any:
    """What the entity format's contract makes of a source value, as loaded back: texts
    lose their trailing spaces, and an empty value (NULL, "", and so empty bytes, written
    as an empty hex string) is one `""`, which loads as NULL (as "" in a NOT NULL text
    column). A JSON document that is JSON's `null` is written `""` as well: a record
    writes no `null`. docs/formats/entity-export.md, "Records"."""
    empty = "" if not nullable and kind in ("text", "sqlite") else None
    if kind == "json" and isinstance(value, str) and value.strip() == "null":
        return empty
    if isinstance(value, str) and kind in ("text", "sqlite"):
        value = value.rstrip(" ")
    if value is None or value in ("", b""):
        return empty
    return value
