"""DuckDB as a target: a local file that locks itself, PostgreSQL's SQL for merging.

DuckDB's SQLAlchemy dialect binds a Decimal as a float, so exact numerics travel as text,
which DuckDB reads exactly; its widest DECIMAL is (38,10) here for a numeric without
precision.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidegate.load.targets.base import Parse, TargetDialect


class DuckDBTarget(TargetDialect):
    name = "duckdb"
    opens_file = True

    def sql_dialect(self) -> sa.engine.Dialect:
        import duckdb_engine

        return duckdb_engine.Dialect()

    def column_type(self, portable: str, *, in_key: bool = False) -> Any:
        kind = super().column_type(portable, in_key=in_key)
        if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
            return _ExactDecimal(kind.precision or 38, kind.scale if kind.scale is not None else 10)
        return kind

    def entity_parser(self, kind: str, parse: Parse) -> Parse:
        if kind == "numeric":
            return lambda value: str(parse(value))  # the text keeps every digit
        return parse


class _ExactDecimal(sa.types.UserDefinedType[Any]):
    """DECIMAL(p,s) whose values are sent as text, untouched (see the module docstring)."""

    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        self.precision = precision
        self.scale = scale

    def get_col_spec(self, **_: Any) -> str:
        return f"DECIMAL({self.precision},{self.scale})"
