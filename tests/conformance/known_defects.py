"""Every cell of the matrix that fails on today's code, with why.

One line per finding: source, targets, export kinds, `table.column`, then the reason.
Targets and kinds are comma lists, or `*` for all of them; each line stands for every
cell it names, one by one, so a cell that is fixed fails the suite until its line no
longer names it.
"""

from __future__ import annotations

CellKey = tuple[str, str, str, str]  # source, target, export kind, "table.column"

ALL = {"targets": ("sqlite", "postgresql", "duckdb", "mysql"), "kinds": ("tables", "entities")}

TABLE = """
"""


def _parsed(table: str) -> dict[CellKey, str]:
    defects: dict[CellKey, str] = {}
    for line in table.strip().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        source, targets, kinds, column, reason = line.split(maxsplit=4)
        for target in ALL["targets"] if targets == "*" else targets.split(","):
            for kind in ALL["kinds"] if kinds == "*" else kinds.split(","):
                key = (source, target, kind, column)
                if key in defects:
                    raise ValueError(f"KNOWN_DEFECTS names {'/'.join(key)} twice")
                defects[key] = reason
    return defects


KNOWN_DEFECTS: dict[CellKey, str] = _parsed(TABLE)
