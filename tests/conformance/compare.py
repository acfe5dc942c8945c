"""Comparing a table in a target with the same table in the source, value by value.

Rows are matched by their key, each side's key in canonical form (canonical.py); every
tested column of every row is then compared in canonical form. For entity exports the
source's values are first put through the format's contract (`entity_contract`), and what
the contract itself changes is reported apart, as the cell's `contract_loss`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.conformance.canonical import Canon, Canonical, show
from tests.conformance.catalog import Column, Table
from tests.conformance.outcomes import EXACT, WRONG, entity_contract
from tests.conformance.reading import Row

MAX_DIFFERENCES = 6  # rows shown per column


@dataclass(frozen=True)
class Verdict:
    """One column's outcome, before it becomes a Cell."""

    column: str
    outcome: str
    detail: str = ""
    contract_loss: str = ""


def judge_table(
    table: Table,
    source_rows: Sequence[Row],
    target_rows: Sequence[Row],
    kind: str,
    canonical: Canonical,
) -> list[Verdict]:
    """The verdict of every tested column of `table` in a target loaded by `kind`."""
    expect = _contract(table) if kind == "entities" else _identity
    expected = [{c.name: expect(c, row[c.name]) for c in table.columns} for row in source_rows]

    def key_of(row: Row) -> tuple[Canon, ...]:
        return tuple(canonical.of(table.column(k).kind, row.get(k)) for k in table.key)

    wanted = {key_of(row): (row, source) for row, source in zip(expected, source_rows, strict=True)}
    found = {key_of(row): row for row in target_rows}
    rows_detail = _rows_detail(table, wanted, found)
    verdicts = []
    for column in table.tested:
        loss = _contract_loss(column, table, expected, source_rows, canonical)
        if rows_detail:
            verdicts.append(Verdict(column.name, WRONG, rows_detail, loss))
            continue
        if target_rows and column.name not in target_rows[0]:
            verdicts.append(Verdict(column.name, WRONG, "no such column in the target", loss))
            continue
        difference = _differences(table, column, wanted, found, canonical)
        verdicts.append(Verdict(column.name, WRONG if difference else EXACT, difference, loss))
    return verdicts


def _identity(_column: Column, value: Any) -> Any:
    return value


def _contract(table: Table) -> Callable[[Column, Any], Any]:
    def apply(column: Column, value: Any) -> Any:
        return entity_contract(column.kind, value, column.name not in table.key)

    return apply


def _rows_detail(table: Table, wanted: dict[Any, tuple[Row, Row]], found: dict[Any, Row]) -> str:
    """A missing or extra row, named by the source's row id (or the target's key)."""
    missing = [source[table.row_id] for key, (_row, source) in wanted.items() if key not in found]
    extra = [row for key, row in found.items() if key not in wanted]
    if missing:
        return f"{len(missing)} row(s) missing in the target, {table.row_id} {show(missing[0])}"
    if extra:
        keys = {k: extra[0].get(k) for k in table.key}
        return f"{len(extra)} row(s) in the target that the source lacks, key {show(keys)}"
    return ""


def _differences(
    table: Table,
    column: Column,
    wanted: dict[Any, tuple[Row, Row]],
    found: dict[Any, Row],
    canonical: Canonical,
) -> str:
    """Each row whose value differs, in row order ('row 3: source X, target Z'), the first
    few of them."""
    lines = []
    for key, (expected, source) in sorted(wanted.items(), key=lambda i: i[1][1][table.row_id]):
        held, want = found[key][column.name], expected[column.name]
        if canonical.of(column.kind, held) != canonical.of(column.kind, want):
            shown = f"source {show(source[column.name])}"
            if canonical.of(column.kind, want) != canonical.of(column.kind, source[column.name]):
                shown += f" (the contract: {show(want)})"
            lines.append(f"{table.row_id} {source[table.row_id]}: {shown}, target {show(held)}")
    if len(lines) > MAX_DIFFERENCES:
        lines[MAX_DIFFERENCES:] = [f"and {len(lines) - MAX_DIFFERENCES} more"]
    return "; ".join(lines)


def _contract_loss(
    column: Column,
    table: Table,
    expected: Sequence[Row],
    source_rows: Sequence[Row],
    canonical: Canonical,
) -> str:
    """What the entity contract changes in this column: the first value it changes, and
    how many it changes ("" when it changes none, and always for table exports)."""
    changed = [
        (source[column.name], row[column.name])
        for row, source in zip(expected, source_rows, strict=True)
        if canonical.of(column.kind, row[column.name])
        != canonical.of(column.kind, source[column.name])
    ]
    if not changed:
        return ""
    before, after = changed[0]
    more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
    return f"{show(before)} becomes {show(after)}{more}"
