"""Database access: engines from URLs, identifier quoting, reflection, transactions.

SQLAlchemy and the DB drivers enter tidegate here and in the modules above this one; nothing
below (config, model, errors, formats) knows about them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import URL, Connection, Engine

from tidegate import urls
from tidegate.errors import ConfigError, SourceError, SourceUnavailable
from tidegate.sources import DIALECTS, SourceDialect


@dataclass(frozen=True)
class Database:
    """An engine plus what tidegate needs to know about where its own tables live.

    Attributes:
        engine: the SQLAlchemy engine.
        dialect: what sets this kind of database apart (see `tidegate.sources`).
        schema: the schema holding the source tables and tidegate's own tables
            (PostgreSQL); None elsewhere.
        origin: the config file (or override) the URL came from, for messages.
        section: the config section, "source" or "target".
    """

    engine: Engine
    dialect: SourceDialect
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
        if write and self.dialect.write_options:
            return self.engine.execution_options(**self.dialect.write_options).begin()
        return self.engine.begin()

    @contextmanager
    def read_committed(self) -> Iterator[Connection]:
        """A connection at READ COMMITTED where the server has isolation levels; the caller
        begins and ends its transaction.

        Claims rely on it: at READ COMMITTED each statement sees only rows committed before
        it started, so a change made by a still-open transaction is neither seen nor waited
        for. (At MariaDB's default REPEATABLE READ, INSERT … SELECT would take locks.)
        """
        options = self.dialect.read_committed_options
        with self.engine.connect().execution_options(**options) as conn:
            yield conn


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
    parsed, kind = urls.parse(url, label, DIALECTS, "sqlite:///source.db")
    dialect = DIALECTS[kind]()
    if must_exist:
        dialect.require_exists(parsed, label)
    engine = _create_engine(parsed, dialect, label)
    dialect.install_hooks(engine)
    db = Database(engine, dialect, schema or None, origin, section)
    if schema and not dialect.has_schemas:
        raise ConfigError(
            f"{db.key_label('schema')}: schemas are only used on PostgreSQL",
            "leave [source] schema empty; on MySQL/MariaDB put the database name in the URL",
        )
    if check or dialect.has_schemas:
        db = _checked(db)
    return db


def _create_engine(parsed: URL, dialect: SourceDialect, label: str) -> Engine:
    try:
        return sa.create_engine(parsed, **dialect.engine_options())
    except exc.NoSuchModuleError:
        raise ConfigError(
            f"{label}: unknown database kind {parsed.drivername!r}",
            "tidegate reads sqlite://, postgresql:// and mysql:// (or mariadb://) URLs",
        ) from None
    except ImportError as error:
        driver = parsed.get_driver_name()
        package = urls.DRIVER_PACKAGES.get(driver, getattr(error, "name", None) or driver)
        raise ConfigError(
            f"{label}: the driver {driver!r} for {parsed.get_backend_name()} is not installed",
            f"pip install {package}, or drop '+{driver}' from the URL to use tidegate's "
            "default driver",
        ) from None


def _checked(db: Database) -> Database:
    """Connect once; where the database has schemas, resolve and check the schema."""
    try:
        with db.engine.connect() as conn:
            if not db.dialect.has_schemas:
                return db
            if db.schema is None:
                current = db.dialect.current_schema(conn)
                return Database(db.engine, db.dialect, current, db.origin, db.section)
            found = db.dialect.schema_exists(conn, db.schema)
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
    """Names of the tables in the database (or schema) that can be exported, sorted (on
    PostgreSQL: no partitions, which their partitioned table holds)."""
    return db.dialect.table_names(db.engine, db.schema)


def primary_key(db: Database, table: str) -> tuple[str, ...]:
    """Primary-key column names of a table in key order; () when it has none."""
    constraint = sa.inspect(db.engine).get_pk_constraint(table, schema=db.schema)
    return tuple(constraint.get("constrained_columns") or ())


def column_types(db: Database, table: str) -> dict[str, Any]:
    """Column name -> SQLAlchemy type, in table order."""
    columns = sa.inspect(db.engine).get_columns(table, schema=db.schema)
    return {column["name"]: column["type"] for column in columns}


def type_text(db: Database, column_type: Any) -> str:
    """A column type as the database spells it, for people (the export's `sql_type`)."""
    try:
        return str(column_type.compile(dialect=db.engine.dialect))
    except Exception:  # a type the dialect cannot print back: its Python name will do
        return type(column_type).__name__
