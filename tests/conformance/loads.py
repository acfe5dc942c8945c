"""Loading a prepared source's exports into targets of one kind, and judging every cell.

Units are loaded in catalog order into one target while each load succeeds (a table-export
chain goes on from the unit before); after a unit whose export or load failed, the next
one starts in a fresh target. A load that fails is REFUSED or FAILED (outcomes.py); a load
that goes through has every column of the unit's tables compared with the source
(compare.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conformance.catalog import Table, Unit
from tests.conformance.compare import judge_table
from tests.conformance.outcomes import FAILED, Cell, Failure, failure_outcome
from tests.conformance.reading import target_tables
from tests.conformance.sources import PreparedSource
from tests.load.conftest import TargetDb
from tidegate import api


def load_cells(
    prepared: PreparedSource, target: str, kind: str, new_target: Callable[[], TargetDb]
) -> list[Cell]:
    """Every cell of the source's catalog loaded by `kind` into targets of dialect
    `target` (`new_target` makes a fresh one)."""
    cells: list[Cell] = []
    current: TargetDb | None = None
    for unit in prepared.catalog.units:
        exported = prepared.exports[unit.name].of(kind)
        if isinstance(exported, Failure):
            cells += _failed(prepared, unit, target, kind, exported, None)
            _dispose(current)  # the chain does not go on past a missing export
            current = None
            continue
        current = current or new_target()
        try:
            api.load(prepared.config, location=str(exported), target_url=current.url)
        except Exception as error:  # every error is an outcome of the matrix
            cells += _failed(prepared, unit, target, kind, Failure.of("load", error), current)
            _dispose(current)  # nor past a load that failed
            current = None
            continue
        cells += _judged(prepared, unit, target, kind, current)
    _dispose(current)
    return cells


def _dispose(target: TargetDb | None) -> None:
    if target is not None:
        target.dispose()


def _failed(
    prepared: PreparedSource,
    unit: Unit,
    target: str,
    kind: str,
    failure: Failure,
    held: TargetDb | None,
) -> list[Cell]:
    """The cells of a unit whose export or load stopped: REFUSED or FAILED."""
    cells = []
    for table in unit.tables:
        written = held is not None and _holds_rows(held, table.name)
        outcome = failure_outcome(failure, table.name, table.columns, written)
        detail = failure.line() + (" (rows were written)" if written else "")
        cells += [
            _cell(prepared, target, kind, table, column.name, outcome, detail=detail)
            for column in table.tested
        ]
    return cells


def _holds_rows(target: TargetDb, table: str) -> bool:
    """Whether a table in the target holds any row (False when there is no such table)."""
    with target_tables(target.url) as tables:
        return tables.holds_rows(table)


def _judged(
    prepared: PreparedSource, unit: Unit, target: str, kind: str, held: TargetDb
) -> list[Cell]:
    """The cells of a unit that loaded: each column compared with the source."""
    cells = []
    with target_tables(held.url) as tables:
        for table in unit.tables:
            types = tables.types(table.name)
            if not types:
                cells += [
                    _cell(prepared, target, kind, table, c.name, FAILED, detail=_ABSENT)
                    for c in table.tested
                ]
                continue
            rows = tables.rows(table.name)
            verdicts = judge_table(table, prepared.rows[table.name], rows, kind, prepared.canonical)
            cells += [
                _cell(
                    prepared,
                    target,
                    kind,
                    table,
                    v.column,
                    v.outcome,
                    target_type=types.get(v.column, ""),
                    detail=v.detail,
                    contract_loss=v.contract_loss,
                )
                for v in verdicts
            ]
    return cells


_ABSENT = "the load went through, but the table is not in the target (a partial write)"


def _cell(
    prepared: PreparedSource,
    target: str,
    kind: str,
    table: Table,
    column: str,
    outcome: str,
    **more: Any,
) -> Cell:
    sql_type = table.column(column).sql_type or "(none)"
    return Cell(prepared.dialect, target, kind, table.name, column, sql_type, outcome, **more)
