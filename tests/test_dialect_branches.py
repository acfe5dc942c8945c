"""No dialect branch outside the dialect modules: what differs between databases is asked
of a source's `SourceDialect` or a target's `TargetDialect`, never decided by comparing a
database's name in the shared algorithms."""

from __future__ import annotations

import ast
from pathlib import Path

import tidegate

PACKAGE = Path(tidegate.__file__).parent
NAMES = {"sqlite", "postgresql", "postgres", "mysql", "mariadb", "duckdb"}
ALLOWED = (
    "sources/",  # one module per source database
    "load/targets/",  # one module per target database
    "urls.py",  # the one place a URL's kind of database is read
    "capture/sqlite.py",  # one capture module per source database
    "capture/postgres.py",
    "capture/mysql.py",
)


def _names_in(node: ast.expr) -> set[str]:
    """The database names a compared expression is or holds (a constant, or a tuple,
    list or set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_names_in(element) for element in node.elts))
    return set()


def dialect_branches(source: str) -> list[tuple[int, str]]:
    """(line, database name) of every comparison with a database's name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found += [(node.lineno, name) for name in sorted(_names_in(operand))]
        elif isinstance(node, ast.Match):
            for case in node.cases:
                pattern = case.pattern
                if isinstance(pattern, ast.MatchValue):
                    found += [(node.lineno, name) for name in sorted(_names_in(pattern.value))]
    return sorted(found)


def test_the_scan_finds_each_form_of_branch() -> None:
    code = (
        'if db.dialect == "sqlite": pass\n'
        'if name in ("postgresql", "mysql"): pass\n'
        'if "duckdb" != kind: pass\n'
        'match kind:\n    case "mariadb": pass\n'
        'names = {"sqlite": 1}\n'  # a registry is not a branch
    )
    assert dialect_branches(code) == [
        (1, "sqlite"),
        (2, "mysql"),
        (2, "postgresql"),
        (3, "duckdb"),
        (4, "mariadb"),
    ]


def test_no_module_outside_the_dialect_modules_compares_a_database_name() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(ALLOWED):
            continue
        offenders += [
            f"tidegate/{relative}:{line}: compares with {name!r}"
            for line, name in dialect_branches(path.read_text(encoding="utf-8"))
        ]
    assert not offenders, "\n".join(offenders)
