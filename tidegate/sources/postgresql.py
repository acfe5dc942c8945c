"""PostgreSQL as a source: the first-class server.

- Sessions: schemas (`[source] schema`, else the connection's current schema).
- Locks: session advisory locks, keyed by a 64-bit hash of the lock's name.
- Reading: `COPY … TO STDOUT` for table export; for entities, each row as JSON text made
  by the server (`row_to_json`), one string the record is joined from, the server doing
  that work on a core of its own. Values are shaped in SQL as the entity format wants them:

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
through the Python path altogether, where numerics still arrive as their JSON digits
(`orjson.Fragment`s) and date-times as the record's text.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import UTC, tzinfo
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tidegate.sources.base import CsvPath, JsonSource, ServerLock, SourceDialect, is_text

LOCK_TIMEOUT = "30s"
"""How long `init` waits for a table's lock (its triggers need one) before giving up."""
UTC_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
"""to_char's pattern for `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
UTC_WIDE = 'YYYY-MM-DD HH24:MI:SS.US"+00"'
"""The pattern of a UTC date-time ISO 8601 does not write (before year 1, after 9999), as
PostgreSQL reads it back: ` BC` follows one before year 1."""


class AdvisoryLock(ServerLock):
    """A session advisory lock; its key is a 64-bit hash of the lock's name, checked in
    pg_locks by its two 32-bit halves."""

    def params(self, name: str) -> dict[str, object]:
        key = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)
        return {"key": key, "high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}


class PostgresSource(SourceDialect):
    name = "postgresql"
    csv_path: ClassVar[CsvPath] = "copy"
    has_schemas = True
    server_lock = AdvisoryLock(
        take="SELECT pg_try_advisory_lock(:key)",
        release="SELECT pg_advisory_unlock(:key)",
        held="SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND pid = pg_backend_pid() AND classid = CAST(:high AS oid) "
        "AND objid = CAST(:low AS oid) AND objsubid = 1",
    )

    def portable_type(self, column_type: Any) -> str:
        from sqlalchemy.dialects import postgresql

        if isinstance(column_type, postgresql.DOMAIN):
            return self.portable_type(column_type.data_type)
        if isinstance(column_type, postgresql.BIT):
            varying = column_type.varying or not column_type.length
            return "varbit" if varying else f"bit({column_type.length})"
        if isinstance(column_type, postgresql.MONEY):
            return "numeric"  # exported as its number, not the locale's text
        if isinstance(column_type, sa.Float) and not isinstance(
            column_type, postgresql.DOUBLE_PRECISION
        ):
            return "float"  # a real is exported as the double it is exactly
        if isinstance(column_type, postgresql.ARRAY | postgresql.ENUM):
            return "text"  # as PostgreSQL prints it: `{1,2,3}`
        return super().portable_type(column_type)

    def table_names(self, engine: Engine, schema: str | None) -> list[str]:
        # Partitions are left out: their partitioned table holds their rows.
        with engine.connect() as conn:
            name = schema or self.current_schema(conn)
            found = conn.execute(sa.text(self.sql("table_names")), {"schema": name})
            return sorted(str(row[0]) for row in found)

    def partitions(self, conn: Connection, qualified: str) -> list[str]:
        found = conn.execute(sa.text(self.sql("partitions")), {"table": qualified})
        return [str(row[0]) for row in found]

    def current_schema(self, conn: Connection) -> str | None:
        return str(conn.execute(sa.text("SELECT current_schema()")).scalar())

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        found = conn.execute(
            sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema}
        ).scalar()
        return bool(found)

    def start_snapshot(self, conn: Connection) -> None:
        # Floats printed exactly (the shortest text that reads back the same), even where
        # the server's default says otherwise.
        conn.exec_driver_sql("SET LOCAL extra_float_digits = 3")

    def start_ddl(self, conn: Connection) -> None:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")

    def csv_column(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        """COPY prints dates, times and timestamps as the format says under DateStyle ISO
        and TimeZone UTC, NULL as an empty field and the empty string as `""`; booleans,
        bytes, reals and money need an expression."""
        from sqlalchemy.dialects import postgresql

        kind = column.type
        if isinstance(kind, postgresql.DOMAIN):
            kind = kind.data_type
        text: sa.ColumnElement[Any]
        if isinstance(kind, sa.Boolean):
            text = sa.case((column, "true"), (~column, "false"))
        elif isinstance(kind, sa.LargeBinary) or type(kind).__name__ == "BYTEA":
            text = sa.func.encode(column, "hex")
        elif isinstance(kind, sa.Float) and not isinstance(kind, postgresql.DOUBLE_PRECISION):
            text = sa.cast(column, postgresql.DOUBLE_PRECISION)  # a real's exact double
        elif isinstance(kind, postgresql.MONEY):
            text = sa.cast(column, sa.Numeric())  # not the locale's text
        else:
            return column.label(column.name)
        return text.label(column.name)

    def key_element(
        self, pk: sa.ColumnElement[Any], index: int, column_type: Any
    ) -> sa.ColumnElement[Any]:
        from sqlalchemy.dialects import postgresql

        text = sa.cast(pk, postgresql.JSONB)[index].astext
        return sa.cast(text, column_type)

    def entity_column(
        self, column: sa.ColumnClause[Any], reflected: Any, zone: tzinfo, key: Sequence[str]
    ) -> sa.ColumnElement[Any]:
        from sqlalchemy.dialects import postgresql

        kind = reflected["type"]
        if isinstance(kind, postgresql.DOMAIN):
            kind = kind.data_type
        if column.name in key or is_text(kind):
            return super().entity_column(column, reflected, zone, key)
        if isinstance(kind, postgresql.MONEY):
            column = sa.cast(column, sa.Numeric()).label(column.name)  # type: ignore[assignment]
            kind = sa.Numeric()
        if _as_text(kind):
            return sa.func.coalesce(sa.cast(column, sa.Text), "").label(column.name)
        if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
            # JSON's text of a numeric is its digits, every one (NaN becomes "NaN").
            json = sa.func.to_json(column, type_=postgresql.JSON)
            return sa.func.coalesce(json, sa.literal_column("'\"\"'::json")).label(column.name)
        text = _time_text(column, kind, zone)
        if text is not None:
            return text.label(column.name)
        if isinstance(kind, sa.JSON):
            # jsonb's text (a document's own newlines never reach a line), typed json so
            # that `fetch_all` loads it as an exact fragment, every digit kept.
            text = sa.cast(sa.cast(column, postgresql.JSONB), sa.Text)
            # The document `null` is written like NULL: a record holds no null.
            document = sa.cast(sa.func.nullif(text, "null"), postgresql.JSON)
            empty: sa.ColumnElement[Any] = sa.literal_column("'\"\"'::json")
            return sa.func.coalesce(document, empty).label(column.name)
        return column

    def fetch_all(self, conn: Connection, query: sa.Select[Any]) -> list[Sequence[Any]]:
        """On a cursor of its own whose `json` values (the numerics and documents
        `entity_column` shapes) load as `orjson.Fragment`s, written as they are."""
        compiled = query.compile(dialect=conn.dialect)
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.adapters.register_loader("json", _fragment_loader())
            cursor.execute(str(compiled), compiled.params)
            rows: list[Sequence[Any]] = cursor.fetchall()
            return rows

    def row_json(
        self, table: sa.TableClause, reflected: Sequence[Any], zone: tzinfo
    ) -> JsonSource | None:
        shaped = []
        for column in reflected:
            value = _json_value(table.c[column["name"]], column["type"], zone)
            if value is None:
                return None
            shaped.append(value.label(column["name"]))
        # A LATERAL subquery names the shaped values, so that row_to_json writes them under
        # the columns' names; the planner folds it into the scan.
        row = sa.select(*shaped).correlate(table).lateral("tidegate_row")
        text = sa.cast(sa.func.row_to_json(row.table_valued()), sa.Text)
        return text, table.join(row, sa.true())

    def grouped_rows(
        self, json: JsonSource, keys: Sequence[sa.ColumnElement[Any]], order: Sequence[Any]
    ) -> sa.Select[Any]:
        """The key, then the rows' JSON texts joined by commas in `order` (the inside of the
        record's array): one row per entity instead of one per child row, and the joining
        done by the server."""
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        text, source = json
        joined = sa.func.string_agg(text, aggregate_order_by(sa.literal(","), *order))
        return sa.select(*keys, joined).select_from(source).group_by(*keys)


def _as_text(kind: sa.types.TypeEngine[Any]) -> bool:
    """Whether an entity record holds a value of this type as PostgreSQL prints it: types
    JSON has nothing for, and those the driver would read inexactly (an interval's months
    as days, a time's offset dropped, 24:00:00 and dates past what Python holds refused)."""
    from sqlalchemy.dialects import postgresql

    text_types = (
        sa.Interval,
        postgresql.INTERVAL,
        postgresql.BIT,
        postgresql.ARRAY,
        postgresql.INET,
        postgresql.CIDR,
        postgresql.MACADDR,
        sa.Time,
        sa.Date,
    )
    return isinstance(kind, text_types) and not isinstance(kind, sa.DateTime)


def _time_text(
    value: sa.ColumnElement[Any], kind: sa.types.TypeEngine[Any], zone: tzinfo
) -> sa.ColumnElement[Any] | None:
    """A date-time as the record's text (NULL as ""), or None when the column is no
    date-time or the source's zone has no name the server knows. One ISO 8601 does not
    write (infinity, a date before year 1 or after 9999) is PostgreSQL's own text of it
    in UTC, which a PostgreSQL target reads back."""
    zone_name = "UTC" if zone is UTC else getattr(zone, "key", None)
    if not isinstance(kind, sa.DateTime) or zone_name is None:
        return None
    # A naive value is read in the source's zone, then both kinds are turned to UTC.
    in_utc = sa.func.timezone("UTC", value if kind.timezone else sa.func.timezone(zone_name, value))
    finite = sa.func.isfinite(value)
    written = sa.case(
        (
            sa.and_(finite, sa.extract("year", in_utc).between(1, 9999)),
            sa.func.to_char(in_utc, UTC_ISO),
        ),
        (
            sa.and_(finite, sa.extract("year", in_utc) < 1),
            sa.func.to_char(in_utc, UTC_WIDE) + " BC",
        ),
        (finite, sa.func.to_char(in_utc, UTC_WIDE)),
        else_=sa.cast(value, sa.Text),  # infinity, -infinity
    )
    return sa.func.coalesce(written, "")


def _json_value(
    value: sa.ColumnElement[Any], kind: sa.types.TypeEngine[Any], zone: tzinfo
) -> sa.ColumnElement[Any] | None:
    """One value of a row for `row_to_json`, shaped as the module's table says; None for
    a type it does not shape."""
    from sqlalchemy.dialects import postgresql

    def json(element: sa.ColumnElement[Any], empty: str = "json") -> sa.ColumnElement[Any]:
        return sa.func.coalesce(element, sa.literal_column(f"'\"\"'::{empty}"))

    if is_text(kind):
        return sa.func.coalesce(sa.func.rtrim(value), "")
    if isinstance(kind, sa.Float):
        double = sa.cast(value, postgresql.DOUBLE_PRECISION)
        # JSON's -0 reads back as the integer 0: a zero is written as its text ("-0").
        zero = sa.func.to_json(sa.cast(double, sa.Text))
        return json(sa.case((double == 0, zero), else_=sa.func.to_json(double)))
    if isinstance(kind, sa.Integer | sa.Numeric | sa.Boolean | sa.Date):
        return json(sa.func.to_json(value))
    if isinstance(kind, sa.DateTime):
        return _time_text(value, kind, zone)
    if isinstance(kind, postgresql.JSONB):
        return json(value, "jsonb")
    if isinstance(kind, sa.JSON):
        return json(sa.cast(value, postgresql.JSONB), "jsonb")
    if isinstance(kind, sa.Uuid):
        return sa.func.coalesce(sa.cast(value, sa.Text), "")
    if isinstance(kind, sa.LargeBinary):
        return sa.func.coalesce(sa.func.encode(value, "hex"), "")
    return None


@functools.cache
def _fragment_loader() -> type:
    """A psycopg loader making a value an `orjson.Fragment` of its text (defined on first
    use: psycopg is imported for PostgreSQL sources only)."""
    from psycopg.adapt import Loader

    class FragmentLoader(Loader):
        def load(self, data: Any) -> orjson.Fragment:
            return orjson.Fragment(bytes(data))

    return FragmentLoader
