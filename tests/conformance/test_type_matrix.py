"""Value fidelity (SPEC "Value fidelity"): every value of every column type of every source
arrives in every target exactly, or its type is refused up front, through both export
kinds.

One test per source x target x export kind. Each asserts that every cell of its
combination (a source column: see the catalogs) is EXACT or REFUSED, except the cells
listed in known_defects.py: a combination that still has some is an expected failure
(xfail, strict), and a listed cell that now passes fails the test until its entry is
removed.

    .venv/bin/pytest tests/conformance
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.conformance.conftest import Matrix
from tests.conformance.known_defects import KNOWN_DEFECTS, CellKey
from tests.conformance.outcomes import ACCEPTABLE, KINDS, Cell

SOURCES = ("postgresql", "mysql", "sqlite")
TARGETS = ("sqlite", "postgresql", "duckdb", "mysql", "iceberg")


class KnownDefects(Exception):
    """Only cells listed in KNOWN_DEFECTS failed: the expected failure of an xfail."""


def known(source: str, target: str, kind: str) -> dict[CellKey, str]:
    return {key: why for key, why in KNOWN_DEFECTS.items() if key[:3] == (source, target, kind)}


def _param(source: str, target: str, kind: str) -> object:
    listed = known(source, target, kind)
    marks = []
    if listed:
        reasons = sorted(set(listed.values()))
        reason = f"{len(listed)} known defect(s): " + "; ".join(reasons)
        marks.append(pytest.mark.xfail(strict=True, raises=KnownDefects, reason=reason))
    return pytest.param(source, target, kind, marks=marks, id=f"{source}-{target}-{kind}")


COMBINATIONS = [_param(s, t, k) for s in SOURCES for t in TARGETS for k in KINDS]


@pytest.mark.parametrize(("source_db", "target_db", "export_kind"), COMBINATIONS)
def test_every_value_arrives_exactly_or_is_refused(
    matrix: Matrix, source_db: str, target_db: str, export_kind: str
) -> None:
    cells = matrix.combination(source_db, target_db, export_kind)
    listed = known(source_db, target_db, export_kind)
    check(cells, listed)


def check(cells: Sequence[Cell], listed: dict[CellKey, str]) -> None:
    """Fail on a defect not listed, or a listed one that is gone; then raise KnownDefects
    while listed ones remain."""
    by_key = {cell.key: cell for cell in cells}
    new = [c.line() for c in cells if c.outcome not in ACCEPTABLE and c.key not in listed]
    gone = [
        f"{'/'.join(key)}: {by_key[key].outcome if key in by_key else 'no such cell'}"
        for key in listed
        if key not in by_key or by_key[key].outcome in ACCEPTABLE
    ]
    problems = []
    if new:
        problems.append(f"{len(new)} defect(s) not in KNOWN_DEFECTS:\n  " + "\n  ".join(new))
    if gone:
        problems.append(
            f"{len(gone)} KNOWN_DEFECTS entr(ies) no longer fail; remove them:\n  "
            + "\n  ".join(gone)
        )
    assert not problems, "\n".join(problems)
    remaining = [by_key[key].line() for key in listed]
    if remaining:
        raise KnownDefects(f"{len(remaining)} known defect(s):\n  " + "\n  ".join(remaining))
