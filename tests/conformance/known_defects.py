"""Every cell of the matrix that fails on today's code, with why.

A line `= <reason>` starts the cells failing for that reason; each line after it names
cells: source, targets, export kinds, `table.column`. Targets and kinds are comma lists,
or `*` for all of them. Each line stands for every cell it names, one by one, so a cell
that is fixed fails the suite until it is no longer named here.
"""

from __future__ import annotations

CellKey = tuple[str, str, str, str]  # source, target, export kind, "table.column"

ALL = {"targets": ("sqlite", "postgresql", "duckdb", "mysql"), "kinds": ("tables", "entities")}

# source    targets                  kinds     table.column
TABLE = """
# SQLite storage classes
= numbers and blobs of an untyped column become text
sqlite      *                        *         t_untyped.c_untyped
= a blob in a TEXT column becomes its hex text
sqlite      *                        *         t_blob_in_text.c_blob_in_text
= INTEGER column holding text/real/blob: fails or becomes 0
sqlite      sqlite                   tables    t_mixed.c_mixed
= sqlite3 shell cuts text at NUL
sqlite      *                        tables    t_text_nul.c_text_nul
= a NUMERIC column's numbers arrive as text in a SQLite target (kept as DECIMAL_TEXT)
sqlite      sqlite                   tables    t_numeric.c_numeric
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
