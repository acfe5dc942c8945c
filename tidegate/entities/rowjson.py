"""Rows as JSON text made by the server: the entity reader's fast path on PostgreSQL.

Made in Python, a row costs a tuple, a dict and a conversion per value; made by the server,
it is one string that the record is joined from, and the server does that work on a core of
its own. `row_to_json` writes each row, every value shaped in SQL as the entity format
wants it (columns.py shapes values the same way for the Python path):

| value | selected as |
|---|---|
| NULL | `''` (or `'""'::json`) |
| text (not enumerations) | `rtrim` |
| integer, exact numeric, boolean, date | `to_json` (every digit of a numeric) |
| float | `to_json` of a `float8`, printed exactly (`extra_float_digits = 3`) |
| date-time | `to_char` in UTC, when the source's zone has a name |
| UUID, bytes | text, hex |
| JSON | `jsonb` (so a document's own newlines never reach a line) |

A value written `null` (a JSON document's own `null`, say) sends that entity through the
Python path again, in the same snapshot. A table with a column of any other type is read
through the Python path altogether.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

import sqlalchemy as sa

from tidegate.entities.columns import is_text, postgresql_time

JsonSource = tuple[sa.ColumnElement[Any], sa.FromClause]


def row_json(
    dialect: str, table: sa.TableClause, reflected: Sequence[Any], zone: tzinfo
) -> JsonSource | None:
    """The expression giving each row of `table` as JSON text, and the FROM clause it
    needs; None when the table must be read through the Python path."""
    if dialect == "postgresql":
        return _postgresql(table, reflected, zone)
    # SQLite's json_object, with each value shaped exactly (a typeof CASE per column, two
    # printf and CASTs per float), made the export slower, not faster; MariaDB's
    # JSON_OBJECT sorts the keys.
    return None


def _postgresql(table: sa.TableClause, reflected: Sequence[Any], zone: tzinfo) -> JsonSource | None:
    shaped = []
    for column in reflected:
        value = _postgresql_value(table.c[column["name"]], column["type"], zone)
        if value is None:
            return None
        shaped.append(value.label(column["name"]))
    # A LATERAL subquery names the shaped values, so that row_to_json writes them under
    # the columns' names; the planner folds it into the scan.
    row = sa.select(*shaped).correlate(table).lateral("tidegate_row")
    text = sa.cast(sa.func.row_to_json(row.table_valued()), sa.Text)
    return text, table.join(row, sa.true())


def _postgresql_value(
    value: sa.ColumnElement[Any], kind: sa.types.TypeEngine[Any], zone: tzinfo
) -> sa.ColumnElement[Any] | None:
    from sqlalchemy.dialects import postgresql

    def json(element: sa.ColumnElement[Any], empty: str = "json") -> sa.ColumnElement[Any]:
        return sa.func.coalesce(element, sa.literal_column(f"'\"\"'::{empty}"))

    if is_text(kind):
        return sa.func.coalesce(sa.func.rtrim(value), "")
    if isinstance(kind, sa.Float):
        return json(sa.func.to_json(sa.cast(value, postgresql.DOUBLE_PRECISION)))
    if isinstance(kind, sa.Integer | sa.Numeric | sa.Boolean | sa.Date):
        return json(sa.func.to_json(value))
    if isinstance(kind, sa.DateTime):
        return postgresql_time(value, kind, zone)
    if isinstance(kind, postgresql.JSONB):
        return json(value, "jsonb")
    if isinstance(kind, sa.JSON):
        return json(sa.cast(value, postgresql.JSONB), "jsonb")
    if isinstance(kind, sa.Uuid):
        return sa.func.coalesce(sa.cast(value, sa.Text), "")
    if isinstance(kind, sa.LargeBinary):
        return sa.func.coalesce(sa.func.encode(value, "hex"), "")
    return None


def grouped_rows(
    json: JsonSource, keys: Sequence[sa.ColumnElement[Any]], order: Sequence[Any]
) -> sa.Select[Any]:
    """A child table's rows, one result row per root key: the key, then the rows' JSON
    texts joined by commas in `order` (the inside of the record's array). One row per
    entity instead of one per child row, and the joining done by the server."""
    from sqlalchemy.dialects.postgresql import aggregate_order_by

    text, source = json
    joined = sa.func.string_agg(text, aggregate_order_by(sa.literal(","), *order))
    return sa.select(*keys, joined).select_from(source).group_by(*keys)
