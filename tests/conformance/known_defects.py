"""Every cell of the matrix that fails on today's code, with why.

A line `= <reason>` starts the cells failing for that reason; each line after it names
cells: source, targets, export kinds, `table.column`. Targets and kinds are comma lists,
or `*` for all of them. Each line stands for every cell it names, one by one, so a cell
that is fixed fails the suite until it is no longer named here.
"""

from __future__ import annotations

CellKey = tuple[str, str, str, str]  # source, target, export kind, "table.column"

ALL = {
    "targets": ("sqlite", "postgresql", "duckdb", "mysql", "iceberg"),
    "kinds": ("tables", "entities"),
}

# source    targets                  kinds     table.column
TABLE = """
"""


def _parsed(table: str) -> dict[CellKey, str]:
    defects: dict[CellKey, str] = {}
    reason = ""
    for line in table.strip().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("= "):
            reason = line[2:]
            continue
        source, targets, kinds, column = line.split()
        for target in ALL["targets"] if targets == "*" else targets.split(","):
            for kind in ALL["kinds"] if kinds == "*" else kinds.split(","):
                key = (source, target, kind, column)
                if key in defects:
                    raise ValueError(f"KNOWN_DEFECTS names {'/'.join(key)} twice")
                defects[key] = reason
    return defects


KNOWN_DEFECTS: dict[CellKey, str] = _parsed(TABLE)
