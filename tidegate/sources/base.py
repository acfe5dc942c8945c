"""What every source database must provide, and the behaviour most of them share.

tidegate's algorithms (claim, plan, export, entity snapshots, locks) are written once; what
differs between databases is asked of the source's `SourceDialect`, one module per
database beside this one. A new source is one more module: a subclass overriding what
differs, and its row in `tidegate.sources.DIALECTS`.

Capture (the triggers) is per database too, in `tidegate.capture`, with its SQL in files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from tidegate.model import TimeKind

CsvPath = Literal["copy", "sql_lines", "rows"]
"""How table export reads a table's rows as CSV (see `tidegate.tables.readers`): the
server's COPY, CSV lines built by the server's SQL, or rows formatted in Python."""

JsonSource = tuple[sa.ColumnElement[Any], sa.FromClause]
"""An expression giving each row of a table as JSON text, and the FROM clause it needs."""


@dataclass(frozen=True)
class ServerLock:
    """A session lock on a database server: the statements that take, check and release
    it, each with the parameters `params` makes from the lock's name."""

    take: str  # one round: true when taken, false when another session holds it
    release: str
    held: str  # true when this session holds it (checked inside a transaction)

    def params(self, name: str) -> dict[str, object]:
        return {"name": name}


class ReadColumn(NamedTuple):
    """A column as a failed read's diagnosis needs it (`explain_failed_read`)."""

    name: str
    portable: str  # the type it is exported as
    sql_type: str  # its type as the source declares it


class SourceDialect:
    """A source database's differences from the rest.

    Attributes:
        name: the database kind's one name ("sqlite", "postgresql", "mysql"): the folder of
            its SQL files, and how it is named in messages.
        csv_path: how table export reads rows as CSV.
        server_lock: the job lock's statements; None for a database without sessions to
            hold one (SQLite: a file lock beside the database).
        times_as_text: date-times come back from the driver as ISO text (SQLite).
        entity_shell: a command-line client that can write whole entity records, if any.
        has_schemas: `[source] schema` names a schema of the database.
    """

    name: ClassVar[str] = ""
    csv_path: ClassVar[CsvPath] = "rows"
    server_lock: ClassVar[ServerLock | None] = None
    times_as_text: ClassVar[bool] = False
    entity_shell: ClassVar[str | None] = None
    has_schemas: ClassVar[bool] = False

    # --- connecting -------------------------------------------------------------------

    def sql(self, name: str) -> str:
        """The statement in ``sql/<dialect>/<name>.sql`` beside this module."""
        return read_sql("tidegate.sources", self.name, name)

    def has_sql(self, name: str) -> bool:
        """Whether this database has the statement `name` (some steps exist only where a
        database needs them)."""
        return bool(sql_path("tidegate.sources", self.name, name).is_file())

    def engine_options(self) -> dict[str, Any]:
        """Options for `sqlalchemy.create_engine`."""
        return {"pool_pre_ping": True}

    def install_hooks(self, engine: Engine) -> None:
        """Session set-up every connection of the engine gets (events)."""

    def require_exists(self, url: URL, label: str) -> None:
        """Refuse a source that opening would create (a missing SQLite file)."""

    def table_names(self, engine: Engine, schema: str | None) -> list[str]:
        """The tables of the schema that can be exported, sorted."""
        return sorted(sa.inspect(engine).get_table_names(schema=schema))

    def partitions(self, conn: Connection, qualified: str) -> list[str]:
        """The partitions of a table (by its schema-qualified name), sorted; none where the
        database partitions a table invisibly to triggers no rows move by (MariaDB) or
        has no partitions (SQLite)."""
        return []

    def current_schema(self, conn: Connection) -> str | None:
        """The schema tidegate's tables go in when `[source] schema` is empty."""
        return None

    def row_estimates(
        self, conn: Connection, tables: Sequence[sa.Table], schema: str | None
    ) -> dict[str, int]:
        """About how many rows each table holds, for a progress display: the database's
        own estimate where it keeps one (`table_rows`, no scan; a table it has no
        estimate of is left out), else a count."""
        if not self.has_sql("table_rows"):
            return {
                table.name: int(
                    conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                )
                for table in tables
            }
        statement = sa.text(self.sql("table_rows")).bindparams(
            sa.bindparam("names", expanding=True)
        )
        found = conn.execute(statement, {"names": [t.name for t in tables], "schema": schema or ""})
        return {name: int(rows) for name, rows in found if rows is not None and rows >= 0}

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        return True

    def lock_place(self, url: URL, schema: str | None) -> str:
        """What names this database in a job lock's name: two processes on the same
        database must make the same text."""
        return f"{url.host or ''}:{url.port or ''}/{url.database or ''}/{schema or ''}"

    # --- transactions -------------------------------------------------------------------

    write_options: ClassVar[Mapping[str, Any]] = {}
    """Execution options of a connection that is about to write (SQLite takes its write
    lock at BEGIN)."""
    read_committed_options: ClassVar[Mapping[str, Any]] = {"isolation_level": "READ COMMITTED"}
    """Execution options under which each statement sees only what was committed before
    it, and a claim neither sees nor waits for an open transaction's rows."""
    snapshot_options: ClassVar[Mapping[str, Any]] = {"isolation_level": "REPEATABLE READ"}
    """Execution options of a transaction whose reads all see one state of the database."""

    def start_snapshot(self, conn: Connection) -> None:
        """Settings at the start of a snapshot transaction that entity reads share."""

    def start_ddl(self, conn: Connection) -> None:
        """Settings at the start of `init`'s transaction."""

    # --- types ----------------------------------------------------------------------------

    def time_kind(self, column_type: Any) -> TimeKind | None:
        """How a column stores time, or None when it is no date or time column."""
        if isinstance(column_type, sa.DateTime):
            return "timestamptz" if column_type.timezone else "timestamp"
        if isinstance(column_type, sa.Date):
            return "date"
        return None

    def portable_type(self, column_type: Any) -> str:
        """The portable type a column is exported as (what a loader creates)."""
        return generic_portable_type(column_type)

    # --- reading ----------------------------------------------------------------------

    def csv_column(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        """The select-list element of a column for table export's CSV, where the database
        must shape the value to print it as the format says (see formats/csvrows.py)."""
        return column.label(column.name)

    def key_element(
        self, pk: sa.ColumnElement[Any], index: int, column_type: Any
    ) -> sa.ColumnElement[Any]:
        """Element `index` of a captured key (the JSON array `pk`), typed like the key
        column, so that the table's primary-key index serves the lookup."""
        raise NotImplementedError

    def entity_column(
        self, column: sa.ColumnClause[Any], reflected: Any, zone: tzinfo, key: Sequence[str]
    ) -> sa.ColumnElement[Any]:
        """The select-list element of one column of an entity table, shaped by the server
        as the record writes it where it can (see `tidegate.entities.snapshot`)."""
        if column.name in key:
            return column  # NULL or not (a root key is never NULL where it counts)
        if is_text(reflected["type"]):
            return sa.func.coalesce(sa.func.rtrim(column), "").label(column.name)
        return column

    def fetch_all(self, conn: Connection, query: sa.Select[Any]) -> list[Sequence[Any]]:
        """Every row of `query` as the driver's plain tuples."""
        return list(conn.execute(query).cursor.fetchall())

    def row_json(
        self, table: sa.TableClause, reflected: Sequence[Any], zone: tzinfo
    ) -> JsonSource | None:
        """Each row of `table` as JSON text made by the server (the entity reader's fast
        path), or None where the server cannot make it exactly."""
        return None

    def explain_failed_read(
        self,
        conn: Connection,
        table: sa.TableClause,
        columns: Sequence[ReadColumn],
        key: Sequence[str],
        error: BaseException,
    ) -> Exception | None:
        """What to raise instead of `error`, a failure of a read of `table`'s rows, when
        the failure is a refusal the source's SQL made on purpose (None: pass it on)."""
        return None

    def grouped_rows(
        self, json: JsonSource, keys: Sequence[sa.ColumnElement[Any]], order: Sequence[Any]
    ) -> sa.Select[Any]:
        """A child table's rows, one result row per root key, for `row_json`'s path."""
        raise NotImplementedError


def sql_path(package: str, dialect: str, name: str) -> Any:
    """Where the statement file ``sql/<dialect>/<name>.sql`` of a package lies."""
    return resources.files(package).joinpath("sql", dialect, f"{name}.sql")


@cache
def read_sql(package: str, dialect: str, name: str) -> str:
    """The statement in a package's ``sql/<dialect>/<name>.sql``, without its header.

    The header documents the statement for readers; it is dropped so that its mentions of
    {placeholders} are not filled in and sent along.
    """
    lines = sql_path(package, dialect, name).read_text(encoding="utf-8").splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines)


def is_text(kind: sa.types.TypeEngine[Any]) -> bool:
    """Whether the server can trim a column: texts, but not enumerations (which some
    servers cannot trim)."""
    return isinstance(kind, sa.String) and not isinstance(kind, sa.Enum)


def generic_portable_type(column_type: Any) -> str:
    """A portable name for a column's type, from SQLAlchemy's generic types; "text" for a
    type it does not know (exported as the database prints it)."""
    checks: list[tuple[type[Any], str]] = [
        (sa.Boolean, "boolean"),
        (sa.SmallInteger, "smallint"),
        (sa.BigInteger, "bigint"),
        (sa.Integer, "integer"),
        (sa.Float, "float"),
        (sa.Numeric, "numeric"),
        (sa.DateTime, "timestamp"),
        (sa.Date, "date"),
        (sa.Time, "time"),
        (sa.Interval, "interval"),
        (sa.Uuid, "uuid"),
        (sa.LargeBinary, "binary"),
        (sa.JSON, "json"),
        (sa.String, "text"),
    ]
    for kind, name in checks:
        if isinstance(column_type, kind):
            if name in ("timestamp", "time") and getattr(column_type, "timezone", False):
                return f"{name}tz"
            if name == "numeric":
                return _numeric(column_type)
            if name == "text" and getattr(column_type, "length", None):
                return f"varchar({column_type.length})"
            return name
    if type(column_type).__name__ in ("BYTEA", "BLOB", "VARBINARY", "BINARY"):
        return "binary"
    return "text"


def _numeric(column_type: Any) -> str:
    """`numeric(p,s)`, or `numeric` without a precision. A negative scale (PostgreSQL's
    numeric(5,-2) holds 12300) is a whole number of p - s digits."""
    precision = getattr(column_type, "precision", None)
    scale = getattr(column_type, "scale", None) or 0
    if precision is None:
        return "numeric"
    if scale < 0:
        return f"numeric({precision - scale},0)"
    return f"numeric({precision},{scale})"
