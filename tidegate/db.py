"""Database access: engines from URLs, identifier quoting, reflection, transactions.

SQLAlchemy and the DB drivers enter tidegate here and in the modules above this one; nothing
below (config, model, errors, formats) knows about them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine

from tidegate.errors import ConfigError, SourceError, SourceUnavailable
from tidegate.model import TimeKind

Dialect = Literal["sqlite", "postgresql", "mysql"]

# A URL without a driver ("postgresql://") would make SQLAlchemy look for psycopg2, which
# tidegate does not install. We pick the drivers tidegate ships with instead.
DEFAULT_DRIVERS = {
    "postgresql": "psycopg",
    "postgres": "psycopg",
    "mysql": "pymysql",
    "mariadb": "pymysql",
}

DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary",
    "mysqldb": "mysqlclient",
    "asyncpg": "asyncpg",
    "pg8000": "pg8000",
    "mysqlconnector": "mysql-connector-python",
    "aiomysql": "aiomysql",
    "duckdb": "duckdb-engine",
}

SUPPORTED_BACKENDS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")

SQLITE_BUSY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Database:
    """An engine plus what tidegate needs to know about where its own tables live.

    Attributes:
        engine: the SQLAlchemy engine.
        dialect: "sqlite", "postgresql" or "mysql" (MariaDB is "mysql").
        schema: the schema holding the source tables and tidegate's own tables
            (PostgreSQL); None elsewhere.
        origin: the config file (or override) the URL came from, for messages.
        section: the config section, "source" or "target".
    """

    engine: Engine
    dialect: Dialect
    schema: str | None
    origin: str
    section: str

    def key_label(self, key: str) -> str:
        """How messages name one of this database's config keys."""
        return f"{self.origin}: [{self.section}] {key}"

    def quote(self, identifier: str) -> str:
        """Quote an identifier for this database, always (never pasted raw into SQL)."""
        return self.engine.dialect.identifier_preparer.quote_identifier(identifier)

    def qualified(self, name: str) -> str:
        """Quoted `schema.name`, or just the quoted name where there is no schema."""
        if self.schema:
            return f"{self.quote(self.schema)}.{self.quote(name)}"
        return self.quote(name)

    def literal(self, value: str) -> str:
        """A string as a quoted SQL literal for this database (for DDL, where there are
        no bind parameters)."""
        return str(
            sa.literal(value, sa.String()).compile(
                dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}
            )
        )

    @property
    def display_url(self) -> str:
        """The URL with its password hidden, safe to print."""
        return self.engine.url.render_as_string(hide_password=True)

    def begin(self, *, write: bool = False) -> Any:
        """A transaction context manager.

        Args:
            write: on SQLite, take the write lock at BEGIN (BEGIN IMMEDIATE) so that a
                read-then-write transaction never fails half-way on a lock upgrade.
        """
        if write and self.dialect == "sqlite":
            return self.engine.execution_options(tidegate_write=True).begin()
        return self.engine.begin()

    @contextmanager
    def read_committed(self) -> Iterator[Connection]:
        """A connection at READ COMMITTED where the server has isolation levels; the caller
        begins and ends its transaction.

        Claims rely on it: at READ COMMITTED each statement sees only rows committed before
        it started, so a change made by a still-open transaction is neither seen nor waited
        for. (At MariaDB's default REPEATABLE READ, INSERT … SELECT would take locks.)
        """
        options: dict[str, Any] = {}
        if self.dialect in ("postgresql", "mysql"):
            options["isolation_level"] = "READ COMMITTED"
        elif self.dialect == "sqlite":
            options["tidegate_write"] = True
        with self.engine.connect().execution_options(**options) as conn:
            yield conn


def parse_url(url: str, label: str) -> URL:
    """Parse a SQLAlchemy URL and fill in tidegate's default driver.

    Raises:
        ConfigError: the text is not a database URL.
    """
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError:
        raise ConfigError(
            f"{label}: not a database URL: {url!r}",
            "use a SQLAlchemy URL such as sqlite:///source.db or postgresql://user@host/dbname",
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"{label}: {backend!r} databases are not supported",
            "tidegate reads sqlite://, postgresql:// and mysql:// (or mariadb://) URLs",
        )
    if not driver and backend in DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=f"{backend}+{DEFAULT_DRIVERS[backend]}")
    return parsed


def connect(
    url: str,
    *,
    origin: str,
    section: str = "source",
    schema: str = "",
    check: bool = True,
    must_exist: bool = True,
) -> Database:
    """Open a database from its URL, checking driver and connectivity before anything else.

    Args:
        url: SQLAlchemy URL.
        origin: the config file the URL came from, for messages.
        section: the config section holding the URL.
        schema: PostgreSQL schema; "" means the connection's current schema.
        check: connect once now, so that a refusing server stops the command at once.
        must_exist: a SQLite file must exist already (a source); connecting would
            otherwise create an empty one.

    Raises:
        ConfigError: bad URL, unknown dialect, or a driver that is not installed.
        SourceUnavailable: the server refused the connection.
    """
    label = f"{origin}: [{section}] url"
    parsed = parse_url(url, label)
    if must_exist and parsed.get_backend_name() == "sqlite":
        _require_sqlite_file(parsed, label)
    engine = _create_engine(parsed, label)
    dialect = _dialect_name(engine, label)
    _install_dialect_hooks(engine, dialect)
    db = Database(
        engine, dialect, schema or None if dialect == "postgresql" else None, origin, section
    )
    if schema and dialect != "postgresql":
        raise ConfigError(
            f"{db.key_label('schema')}: schemas are only used on PostgreSQL",
            "leave [source] schema empty; on MySQL/MariaDB put the database name in the URL",
        )
    if check or dialect == "postgresql":
        db = _checked(db)
    return db


def _require_sqlite_file(parsed: URL, label: str) -> None:
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    if not Path(database).is_file():
        raise ConfigError(
            f"{label}: SQLite database file {database!r} does not exist",
            "check the path in the URL: sqlite:///relative/path.db or sqlite:////absolute/path.db",
        )


def _create_engine(parsed: URL, label: str) -> Engine:
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    try:
        return sa.create_engine(parsed, **options)
    except exc.NoSuchModuleError:
        raise ConfigError(
            f"{label}: unknown database kind {parsed.drivername!r}",
            "tidegate reads sqlite://, postgresql:// and mysql:// (or mariadb://) URLs",
        ) from None
    except ImportError as error:
        driver = parsed.get_driver_name()
        package = DRIVER_PACKAGES.get(driver, getattr(error, "name", None) or driver)
        raise ConfigError(
            f"{label}: the driver {driver!r} for {parsed.get_backend_name()} is not installed",
            f"pip install {package}, or drop '+{driver}' from the URL to use tidegate's "
            "default driver",
        ) from None


def _dialect_name(engine: Engine, label: str) -> Dialect:
    name = engine.dialect.name
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name in ("sqlite", "postgresql"):
        return name  # type: ignore[return-value]
    raise ConfigError(
        f"{label}: {name} is not supported as a source",
        "tidegate reads SQLite, PostgreSQL and MySQL/MariaDB sources",
    )


def _install_dialect_hooks(engine: Engine, dialect: Dialect) -> None:
    if dialect == "sqlite":
        # pysqlite's own transaction handling issues BEGIN lazily and never for DDL; we
        # take control so that DDL is transactional and writers can BEGIN IMMEDIATE.
        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("tidegate_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    elif dialect == "mysql":
        # tidegate's own timestamps are integers, but reflection and any TIMESTAMP it reads
        # must not depend on the server's or the session's local time zone.
        @event.listens_for(engine, "connect")
        def _utc_session(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")


def _checked(db: Database) -> Database:
    """Connect once; on PostgreSQL also resolve and check the schema."""
    try:
        with db.engine.connect() as conn:
            if db.dialect != "postgresql":
                return db
            if db.schema is None:
                current = conn.execute(sa.text("SELECT current_schema()")).scalar()
                return Database(db.engine, db.dialect, str(current), db.origin, db.section)
            found = conn.execute(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name"),
                {"name": db.schema},
            ).scalar()
    except exc.DBAPIError as error:
        raise unavailable(db, error) from None
    if not found:
        raise ConfigError(
            f"{db.key_label('schema')}: schema {db.schema!r} does not exist in {db.display_url}",
            "create it, or set [source] schema to an existing schema",
        )
    return db


def unavailable(db: Database, error: exc.DBAPIError) -> SourceUnavailable:
    """Turn a driver's connection error into one line naming the database."""
    return SourceUnavailable(
        f"{db.key_label('url')}: cannot connect to {db.display_url}: {driver_reason(error)}",
        "check that the server is running and the URL, user and password are right",
    )


def driver_reason(error: exc.DBAPIError) -> str:
    """The driver's own message for an error, on one line."""
    return _first_line(str(error.orig) if error.orig is not None else str(error))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = re.sub(r"\s+", " ", line).strip()
        if line:
            return line
    return text.strip()


def database_error(db: Database, error: exc.DBAPIError, doing: str) -> SourceError:
    """One line for a database error met while doing something."""
    if error.connection_invalidated:
        return connection_lost(error, doing)
    return SourceError(f"{db.display_url}: {doing}: {driver_reason(error)}")


def connection_lost(
    error: BaseException,
    doing: str = "",
    hint: str = "run it again: what it had not finished was rolled back with its session",
) -> SourceUnavailable:
    """One line for a source session that ended under a statement: the server ended it (an
    administrator, a restart, an idle timeout), or SQLite's busy timeout ran out."""
    orig = getattr(error, "orig", None)
    reason = _first_line(str(orig or error)) or type(error).__name__
    if "database is locked" in reason:
        return SourceUnavailable(
            "the source database stayed locked by another writer for the whole busy timeout",
            "a transaction of the application holds SQLite's write lock: run it again once "
            "that transaction has ended",
        )
    during = f" while {doing}" if doing else ""
    return SourceUnavailable(f"the connection to the source was lost{during}: {reason}", hint)


def inline_sql(db: Database, statement: sa.Executable) -> str:
    """A statement as SQL text with its (integer and date) parameters inlined, to send to
    the driver as is: for COPY, and to read rows exactly as the driver returns them.

    Drivers with `%` placeholders get `%` doubled in identifiers at compile time; without
    parameters they do not read placeholders, so the doubling is undone.
    """
    translate = {"schema_translate_map": {None: db.schema}, "render_schema_translate": True}
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=db.engine.dialect,
        compile_kwargs={"literal_binds": True},
        **(translate if db.schema else {}),
    )
    sql = str(compiled)
    if db.engine.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("%%", "%")
    return sql


def list_tables(db: Database) -> list[str]:
    """Names of the base tables in the database (or schema), sorted."""
    return sorted(sa.inspect(db.engine).get_table_names(schema=db.schema))


def primary_key(db: Database, table: str) -> tuple[str, ...]:
    """Primary-key column names of a table in key order; () when it has none."""
    constraint = sa.inspect(db.engine).get_pk_constraint(table, schema=db.schema)
    return tuple(constraint.get("constrained_columns") or ())


def time_kind(db: Database, column_type: Any) -> TimeKind | None:
    """How a column stores time, or None when it is no date or time column."""
    if db.dialect == "sqlite":
        return "sqlite"  # SQLite columns have no types; the capture reads the value
    if isinstance(column_type, sa.DateTime):
        if column_type.timezone or (
            type(column_type).__name__ == "TIMESTAMP" and (db.dialect == "mysql")
        ):
            return "timestamptz"  # MySQL TIMESTAMP is stored in UTC
        return "timestamp"
    if isinstance(column_type, sa.Date):
        return "date"
    return None


def column_types(db: Database, table: str) -> dict[str, Any]:
    """Column name -> SQLAlchemy type, in table order."""
    columns = sa.inspect(db.engine).get_columns(table, schema=db.schema)
    return {column["name"]: column["type"] for column in columns}


def portable_type(column_type: Any) -> str:
    """A portable name for a column's type: what the loader creates in the target."""
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
        (sa.LargeBinary, "binary"),
        (sa.JSON, "json"),
        (sa.String, "text"),
    ]
    for kind, name in checks:
        if isinstance(column_type, kind):
            if name == "timestamp" and getattr(column_type, "timezone", False):
                return "timestamptz"
            if name == "numeric":
                precision = getattr(column_type, "precision", None)
                scale = getattr(column_type, "scale", None)
                if precision is not None:
                    return f"numeric({precision},{scale or 0})"
            if name == "text" and getattr(column_type, "length", None):
                return f"varchar({column_type.length})"
            return name
    if type(column_type).__name__ in ("BYTEA", "BLOB", "VARBINARY", "BINARY"):
        return "binary"
    return "text"
