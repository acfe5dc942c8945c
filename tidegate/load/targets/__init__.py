"""Target databases, each behind a `TargetDialect` (see `base.py`): one module per kind.

Adding a target: a module with a `TargetDialect` subclass, its row below, and its column in
the type matrix (docs/types.md).
"""

from __future__ import annotations

from tidegate.load.targets.base import TargetDialect
from tidegate.load.targets.duckdb import DuckDBTarget
from tidegate.load.targets.mysql import MySQLTarget
from tidegate.load.targets.postgresql import PostgresTarget
from tidegate.load.targets.sqlite import SQLiteTarget

DIALECTS: dict[str, type[TargetDialect]] = {
    "postgresql": PostgresTarget,
    "sqlite": SQLiteTarget,
    "duckdb": DuckDBTarget,
    "mysql": MySQLTarget,
}
"""Each supported target by its kind's one name (see `tidegate.urls`)."""

__all__ = ["DIALECTS", "TargetDialect"]
