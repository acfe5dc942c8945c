"""Source databases, each behind a `SourceDialect` (see `base.py`): one module per kind.

Adding a source: a module with a `SourceDialect` subclass, its row below, its capture in
`tidegate.capture` and its SQL files, and its column in the type matrix (docs/types.md).
"""

from __future__ import annotations

from tidegate.sources.base import SourceDialect
from tidegate.sources.mysql import MySQLSource
from tidegate.sources.postgresql import PostgresSource
from tidegate.sources.sqlite import SQLiteSource

DIALECTS: dict[str, type[SourceDialect]] = {
    "sqlite": SQLiteSource,
    "postgresql": PostgresSource,
    "mysql": MySQLSource,
}
"""Each supported source by its kind's one name (see `tidegate.urls`)."""

__all__ = ["DIALECTS", "SourceDialect"]
