"""How the entity reader selects each column, so that values arrive ready for the record.

Per value, a Python step (a `default` hook call, a Decimal made and formatted, a datetime
made and formatted) costs more than everything else an entity export does with it. Where
the server can shape a value as the record writes it, it does, in the query:

| column | selected as | arrives as |
|---|---|---|
| root key | itself | the driver's value (the reader pages through keys) |
| text (not enumerations) | `coalesce(rtrim(c), '')` | the record's text |
| PostgreSQL numeric | `coalesce(to_json(c), '""')` | an `orjson.Fragment` of its digits |
| PostgreSQL date-time, zone known | `coalesce(to_char(c in UTC, …), '')` | the record's text |
| PostgreSQL json | `coalesce(c::jsonb, '""')` | a dict (its own newlines never reach a line) |
| SQLite, any column | `coalesce(c, '')` | the driver's value, NULL as "" |
| anything else | itself | the driver's value |

SQLite may keep any type in any column, so it trims nothing (`entity_record` checks the
written line instead).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, tzinfo
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

# to_char's pattern for `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
UTC_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def selected(
    dialect: str, column: sa.ColumnClause[Any], reflected: Any, zone: tzinfo, key: Sequence[str]
) -> sa.ColumnElement[Any]:
    """The select-list element for one column (see the module's table)."""
    if column.name in key:
        return column  # NULL or not (a root key is never NULL where it counts)
    if dialect == "sqlite":
        return sa.func.coalesce(column, "").label(column.name)
    kind = reflected["type"]
    if is_text(kind):
        return sa.func.coalesce(sa.func.rtrim(column), "").label(column.name)
    if dialect == "postgresql":
        return _postgresql(column, kind, zone)
    return column


def is_text(kind: sa.types.TypeEngine[Any]) -> bool:
    """Whether the server can trim a column: texts, but not enumerations (which some
    servers cannot trim)."""
    return isinstance(kind, sa.String) and not isinstance(kind, sa.Enum)


def _postgresql(
    column: sa.ColumnClause[Any], kind: sa.types.TypeEngine[Any], zone: tzinfo
) -> sa.ColumnElement[Any]:
    from sqlalchemy.dialects import postgresql

    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        # JSON's text of a numeric is its digits, every one (NaN becomes "NaN").
        json = sa.func.to_json(column, type_=postgresql.JSON)
        return sa.func.coalesce(json, sa.literal_column("'\"\"'::json")).label(column.name)
    text = postgresql_time(column, kind, zone)
    if text is not None:
        return text.label(column.name)
    if isinstance(kind, sa.JSON) and not isinstance(kind, postgresql.JSONB):
        document = sa.cast(column, postgresql.JSONB)
        return sa.func.coalesce(document, sa.literal_column("'\"\"'::jsonb")).label(column.name)
    return column


def postgresql_time(
    value: sa.ColumnElement[Any], kind: sa.types.TypeEngine[Any], zone: tzinfo
) -> sa.ColumnElement[Any] | None:
    """A PostgreSQL date-time as the record's text (NULL as ""), or None when the column is
    no date-time or the source's zone has no name the server knows."""
    zone_name = "UTC" if zone is UTC else getattr(zone, "key", None)
    if not isinstance(kind, sa.DateTime) or zone_name is None:
        return None
    # A naive value is read in the source's zone, then both kinds are turned to UTC.
    in_utc = value if kind.timezone else sa.func.timezone(zone_name, value)
    return sa.func.coalesce(sa.func.to_char(sa.func.timezone("UTC", in_utc), UTC_ISO), "")


def fetch_all(conn: Connection, query: sa.Select[Any]) -> list[Sequence[Any]]:
    """Every row of `query` as the driver's plain tuples (no per-row SQLAlchemy objects).

    On PostgreSQL the query runs on a cursor of its own whose `json` values (only the
    numerics `selected` wraps) load as `orjson.Fragment`s, written as they are.
    """
    if conn.dialect.name != "postgresql":
        return list(conn.execute(query).cursor.fetchall())
    compiled = query.compile(dialect=conn.dialect)
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.adapters.register_loader("json", _fragment_loader())
        cursor.execute(str(compiled), compiled.params)
        rows: list[Sequence[Any]] = cursor.fetchall()
        return rows


@functools.cache
def _fragment_loader() -> type:
    """A psycopg loader making a value an `orjson.Fragment` of its text (defined on first
    use: psycopg is imported for PostgreSQL sources only)."""
    from psycopg.adapt import Loader

    class FragmentLoader(Loader):
        def load(self, data: Any) -> orjson.Fragment:
            return orjson.Fragment(bytes(data))

    return FragmentLoader
