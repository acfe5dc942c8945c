"""Real target databases for load tests: SQLite and DuckDB files, a fresh PostgreSQL schema
(in the session's test database), a fresh MariaDB database per test, and Iceberg
warehouses in a folder."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import MYSQL_ADMIN_URL, SESSION_TAG

_counter = itertools.count(1)


@dataclass
class TargetDb:
    dialect: str
    url: str
    engines: list[sa.Engine] = field(default_factory=list)

    def engine(self) -> sa.Engine:
        engine = sa.create_engine(self.url)
        self.engines.append(engine)
        return engine

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


def make_target(request: pytest.FixtureRequest, dialect: str, tmp_path: Path) -> TargetDb:
    if dialect == "sqlite":
        return TargetDb("sqlite", f"sqlite:///{tmp_path / 'target.db'}")
    if dialect == "duckdb":
        return TargetDb("duckdb", f"duckdb:///{tmp_path / 'target.duckdb'}")
    if dialect == "iceberg":  # a warehouse with its SQL catalog, read by pyiceberg (helpers)
        return TargetDb("iceberg", f"iceberg:///{tmp_path / 'warehouse'}")
    if dialect == "postgresql":
        database = request.getfixturevalue("pg_database")
        schema = f"t{next(_counter)}_{secrets.token_hex(2)}"
        admin = sa.create_engine(database, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        admin.dispose()
        url = sa.make_url(database).set(query={"options": f"-csearch_path={schema}"})
        return TargetDb("postgresql", url.render_as_string(hide_password=False))
    server: sa.Engine = request.getfixturevalue("mysql_server")
    name = f"{SESSION_TAG}_t{next(_counter)}"
    with server.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.make_url(MYSQL_ADMIN_URL).set(database=name, query={"charset": "utf8mb4"})
    return TargetDb("mysql", url.render_as_string(hide_password=False))


@pytest.fixture(params=["sqlite", "postgresql", "duckdb", "mysql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TargetDb]:
    """A fresh, empty target database of each kind."""
    made = make_target(request, request.param, tmp_path)
    yield made
    made.dispose()
