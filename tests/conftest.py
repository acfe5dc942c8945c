"""Real databases for the tests: a SQLite file, and fresh PostgreSQL and MariaDB databases.

One PostgreSQL database and one MariaDB database are created per test session and dropped
after it; each test gets its own schema (PostgreSQL) or database (MariaDB) inside, so
tests never see each other's tables. Under CI (CI=true) a server that cannot be reached
fails the run; elsewhere its tests are skipped.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tidegate.config import Config, load_config

PG_ADMIN_URL = os.environ.get(
    "TIDEGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MYSQL_ADMIN_URL = os.environ.get("TIDEGATE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/")
REQUIRE_SERVERS = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SESSION_TAG = f"tidegate_test_{os.getpid()}_{secrets.token_hex(3)}"
_counter = itertools.count(1)


def _server_missing(name: str, error: Exception) -> None:
    message = f"{name} is not reachable: {' '.join(str(error).split())[:200]}"
    if REQUIRE_SERVERS:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        help="tests/test_guarantees.py: run for --long-minutes per source instead of the "
        "few examples of a default run, and report what was done; tests/test_soak.py: "
        "write for --long-minutes instead of 15 seconds",
    )
    parser.addoption(
        "--long-minutes",
        type=float,
        default=10.0,
        metavar="MINUTES",
        help="with --long: minutes of examples per source database, and of the soak's "
        "writing (default 10)",
    )


@dataclass
class Tally:
    """What tests/test_guarantees.py did, per source dialect, for the summary line."""

    examples: dict[str, int] = field(default_factory=dict)
    verified: dict[str, int] = field(default_factory=dict)  # examples whose final check passed
    steps: dict[str, int] = field(default_factory=dict)
    kills: dict[str, int] = field(default_factory=dict)
    ddl: dict[str, int] = field(default_factory=dict)  # schema changes made
    rows: dict[str, int] = field(default_factory=dict)  # rows compared with the source
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, counter: str, dialect: str, amount: float = 1) -> None:
        counts: dict[str, Any] = getattr(self, counter)
        counts[dialect] = counts.get(dialect, 0) + amount

    def summary(self) -> str:
        parts = []
        for dialect in sorted(self.examples):
            parts.append(
                f"{dialect}: {self.examples[dialect]:,} examples, "
                f"{self.steps.get(dialect, 0):,} steps, {self.kills.get(dialect, 0):,} kills, "
                f"{self.ddl.get(dialect, 0):,} schema changes, "
                f"{self.rows.get(dialect, 0):,} rows compared, "
                f"{self.seconds.get(dialect, 0) / 60:.1f} min"
            )
        lost = sum(self.examples.values()) - sum(self.verified.values())
        verdict = "nothing lost" if not lost else f"{lost} example(s) failed their final check"
        return "guarantees: " + "; ".join(parts) + f"; {verdict}"


GUARANTEES = pytest.StashKey[Tally]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[GUARANTEES] = Tally()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tally = config.stash.get(GUARANTEES, None)
    if tally is not None and tally.examples:
        terminalreporter.write_line(tally.summary())


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{SESSION_TAG}"')
    except sa.exc.OperationalError as error:
        _server_missing("PostgreSQL", error)
    url = sa.make_url(PG_ADMIN_URL).set(database=SESSION_TAG)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{SESSION_TAG}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[sa.Engine]:
    """An admin engine on the MariaDB server; drops every test database at the end."""
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as error:
        _server_missing("MariaDB", error)
    yield admin
    with admin.connect() as conn:
        names = (
            conn.exec_driver_sql(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                (SESSION_TAG + "%",),
            )
            .scalars()
            .all()
        )
        for name in names:
            conn.exec_driver_sql(f"DROP DATABASE `{name}`")
    admin.dispose()


@dataclass
class Source:
    """A source database for one test, with helpers to shape and write to it."""

    dialect: str
    url: str
    schema: str = ""
    tmp_path: Path = field(default_factory=Path)
    engines: list[sa.Engine] = field(default_factory=list)

    def settings(self) -> list[str]:
        """The `section.key=value` overrides that point a config at this source, with
        exports and a SQLite target in the test's folder."""
        base = [
            f"source.url={self.url}",
            f"output.location={self.tmp_path / 'exports'}",
            f"target.url=sqlite:///{self.tmp_path / 'target.db'}",
        ]
        if self.schema:
            base.append(f"source.schema={self.schema}")
        return base

    def cli_options(self, *overrides: str) -> list[str]:
        """`--set` options for the CLI that `config` gives the library."""
        return [arg for setting in [*self.settings(), *overrides] for arg in ("--set", setting)]

    def config(self, *overrides: str, **sections: Any) -> Config:
        """A Config pointing at this source; extra `section.key=value` overrides allowed."""
        base = self.settings()
        path = self.tmp_path / "tidegate.toml"
        if not path.exists():
            path.write_text("# written by the test; values come from --set overrides\n")
        return load_config(path, [*base, *overrides], environ={})

    def engine(self, **options: Any) -> sa.Engine:
        """A new engine on the source (the application's own connections)."""
        engine = sa.create_engine(self.url, **options)
        if self.schema:
            engine = engine.execution_options(schema_translate_map={None: self.schema})
        self.engines.append(engine)
        return engine

    def create(self, *tables: sa.Table) -> None:
        """Create tables (defined on their own MetaData, without schema) in the source."""
        engine = self.engine()
        with engine.begin() as conn:
            for table in tables:
                table.create(conn)

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


def _sqlite_source(tmp_path: Path) -> Source:
    return Source("sqlite", f"sqlite:///{tmp_path / 'source.db'}", tmp_path=tmp_path)


def _pg_source(tmp_path: Path, pg_database: str) -> Source:
    schema = f"s{next(_counter)}_{secrets.token_hex(2)}"
    engine = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return Source("postgresql", pg_database, schema=schema, tmp_path=tmp_path)


def _mysql_source(tmp_path: Path, mysql_server: sa.Engine) -> Source:
    name = f"{SESSION_TAG}_{next(_counter)}"
    with mysql_server.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.make_url(MYSQL_ADMIN_URL).set(database=name, query={"charset": "utf8mb4"})
    return Source("mysql", url.render_as_string(hide_password=False), tmp_path=tmp_path)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    """A fresh, empty source database of each dialect."""
    yield from _make_source(request, request.param, tmp_path)


@pytest.fixture(params=["postgresql", "mysql"])
def server_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    """A fresh, empty source database on each database server (concurrency tests)."""
    yield from _make_source(request, request.param, tmp_path)


@pytest.fixture
def sqlite_source(tmp_path: Path) -> Iterator[Source]:
    """A fresh SQLite source."""
    source = _sqlite_source(tmp_path)
    yield source
    source.dispose()


def _make_source(request: pytest.FixtureRequest, dialect: str, tmp_path: Path) -> Iterator[Source]:
    if dialect == "sqlite":
        source = _sqlite_source(tmp_path)
    elif dialect == "postgresql":
        source = _pg_source(tmp_path, request.getfixturevalue("pg_database"))
    else:
        source = _mysql_source(tmp_path, request.getfixturevalue("mysql_server"))
    yield source
    source.dispose()


# --- one SQLite connection per thread at a time ---------------------------------------
# SQLite allows one writer: a connection waiting to commit holds a PENDING lock that keeps
# new readers out until every reader is done. A thread that opens a second connection to a
# database while its first still holds a transaction can therefore wait for itself (through
# another thread's commit) until the busy timeout. Every test fails if tidegate's code does
# that: the pool is watched for a thread checking out a second connection to the same file.

_held: dict[tuple[int, str], int] = {}


def _sqlite_file(dbapi_connection: Any) -> str | None:
    try:
        rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
    except Exception:
        return None
    return next((row[2] for row in rows if row[1] == "main" and row[2]), None)


@sa.event.listens_for(sa.pool.Pool, "checkout")
def _one_connection_per_thread(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    import threading

    if not hasattr(dbapi_connection, "create_function"):  # not sqlite3
        return
    path = _sqlite_file(dbapi_connection)
    if path is None:
        return
    # Per pool: the test's own engines on the same file are the application's, not ours.
    key = (threading.get_ident(), f"{id(proxy._pool)}:{path}")
    record.info["tidegate_test_key"] = key
    _held[key] = _held.get(key, 0) + 1
    if _held[key] > 1:
        _held[key] -= 1
        record.info.pop("tidegate_test_key")
        raise AssertionError(
            f"a second connection to {path} opened by a thread that holds one already"
        )


@sa.event.listens_for(sa.pool.Pool, "checkin")
def _connection_returned(dbapi_connection: Any, record: Any) -> None:
    key = record.info.pop("tidegate_test_key", None) if record is not None else None
    if key is not None:
        _held[key] -= 1
