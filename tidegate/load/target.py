"""The target database: connecting, its tables made from exported schemas, and the records
of what was applied.

Target tables are created from the portable types an export carries (`TYPES` below, per
dialect); a table that exists gets the columns it lacks added (nullable: its rows predate
them). A column whose type changed is left as it is. DDL runs before an export's
transaction, and is idempotent, so a load killed between the two is simply run again.

Two control tables record progress, written in the same transaction as the data:

- `tidegate_applied`: one row per applied export (`export_<K>_…` or `INIT_EXPORT_<run>`);
- `tidegate_entity_version`: per entity key, the `TIMESTAMP` of the record the target
  holds, so an older record (from a new initial export, say) is skipped, and the key's
  PK fields (JSON), so that an initial run can remove the entities it no longer holds;
- `tidegate_entity_initial`: per entity, the start of the newest initial run applied:
  any record older than it is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tidegate.errors import TargetError
from tidegate.formats.tableschema import TableSchema, base_type

T = TypeVar("T")
DIALECTS = ("postgresql", "sqlite", "duckdb", "mysql")
PARTITIONS = 8

metadata = sa.MetaData()
applied_table = sa.Table(
    "tidegate_applied",
    metadata,
    sa.Column("export", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),  # hwm-to, or the run number
)
version_table = sa.Table(
    "tidegate_entity_version",
    metadata,
    sa.Column("entity", sa.String(255), primary_key=True),
    sa.Column("key_sha1", sa.String(40), primary_key=True),
    sa.Column("stamp", sa.String(40), nullable=False),
    sa.Column("pk", sa.Text),  # the record's PK fields as a JSON array (NULL: loaded before)
)
initial_table = sa.Table(
    "tidegate_entity_initial",
    metadata,
    sa.Column("entity", sa.String(255), primary_key=True),
    sa.Column("created", sa.String(40), nullable=False),  # start of the newest initial run
)


class Target:
    """A target database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise TargetError(
                f"[target] url {url!r} is not a database URL",
                "use e.g. postgresql://user@host/db, sqlite:///target.db, duckdb:///t.duckdb",
            ) from None
        self.dialect = (
            "mysql"
            if parsed.get_backend_name() in ("mysql", "mariadb")
            else (parsed.get_backend_name())
        )
        if self.dialect not in DIALECTS:
            raise TargetError(
                f"[target] url: {self.dialect} targets are not supported",
                f"use one of {', '.join(DIALECTS)}",
            )
        self.engine = _engine(parsed)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One load at a time per target: a session lock on the server (PostgreSQL's
        advisory lock, MariaDB's GET_LOCK), named after the target's database (and
        schema), held for the whole load. SQLite and DuckDB files lock themselves."""
        if self.dialect not in ("postgresql", "mysql"):
            yield
            return
        statements = {
            "postgresql": ("SELECT pg_try_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
            "mysql": ("SELECT GET_LOCK(:key, 0)", "SELECT RELEASE_LOCK(:key)"),
        }
        take, release = statements[self.dialect]
        with self.engine.connect() as conn:
            key = self._lock_key(conn)
            taken = conn.execute(sa.text(take), {"key": key}).scalar()
            conn.commit()
            if not taken:
                raise TargetError(
                    f"target {self.safe_url}: another load into it is running; not started",
                    "wait for it to finish, then run load again",
                )
            try:
                yield
            finally:
                with contextlib.suppress(sa.exc.DBAPIError):  # a lost session freed it
                    conn.execute(sa.text(release), {"key": key})
                    conn.commit()

    def _lock_key(self, conn: Connection) -> object:
        """The lock of this target: its database and schema, not the whole server.

        A MariaDB `GET_LOCK` name is one namespace for the whole server, and a PostgreSQL
        advisory lock one for the whole database, so a fixed key would make loads into two
        different targets on one server (or two schemas of one database) refuse each other.
        """
        where = "DATABASE()" if self.dialect == "mysql" else "current_database(), current_schema()"
        place = "/".join(str(part) for part in conn.execute(sa.text(f"SELECT {where}")).one())
        digest = hashlib.sha1(f"tidegate-load:{place}".encode()).digest()
        if self.dialect == "postgresql":
            return int.from_bytes(digest[:8], "big", signed=True)
        return f"tidegate_load:{digest.hex()}"  # 54 characters: MariaDB allows 64

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction on the target; a lost connection or a clash with another load
        (both recording the same export as applied) is one error line, and the
        transaction is rolled back."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError as error:
            raise TargetError(
                f"target {self.safe_url}: another load applied the same export at the same "
                f"time ({_first_line(error)}); this one was rolled back",
                "run one load at a time per target; run it again to apply what is left",
            ) from None
        except sa.exc.OperationalError as error:
            raise TargetError(f"target {self.safe_url}: {_first_line(error)}") from None

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def prepare(self, schemas: Sequence[TableSchema]) -> dict[str, sa.Table]:
        """Create missing tables (and the control tables), add missing columns; the target's
        tables for `schemas`, by name."""
        return self._ddl(lambda conn: self._prepare(conn, schemas))

    def _prepare(self, conn: Connection, schemas: Sequence[TableSchema]) -> dict[str, sa.Table]:
        metadata.create_all(conn)
        _add_columns(conn, version_table, self.dialect)  # a target made by an older version
        existing = set(sa.inspect(conn).get_table_names())
        tables = {}
        for schema in schemas:
            table = target_table(schema, self.dialect)
            if schema.name not in existing:
                table.create(conn)
            else:
                _add_columns(conn, table, self.dialect)
            tables[schema.name] = table
        return tables

    def applied(self) -> dict[str, tuple[str, int]]:
        """Applied exports: name -> (kind, position)."""

        def read(conn: Connection) -> dict[str, tuple[str, int]]:
            metadata.create_all(conn)
            columns = applied_table.c
            rows = conn.execute(sa.select(columns.export, columns.kind, columns.position))
            return {row[0]: (row[1], int(row[2])) for row in rows}

        return self._ddl(read)

    def _ddl(self, work: Callable[[Connection], T]) -> T:
        """Run DDL in a transaction of its own; a second load creating the same table at
        the same moment makes it fail once, so it is tried again (the table is there)."""
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError) as error:
                if attempt == 2:
                    raise TargetError(f"target {self.safe_url}: {_first_line(error)}") from None
            except sa.exc.OperationalError as error:
                raise TargetError(f"target {self.safe_url}: {_first_line(error)}") from None
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


def _engine(url: sa.engine.URL) -> Engine:
    backend = url.get_backend_name()
    try:
        if backend == "sqlite" and url.database and url.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
        if backend == "postgresql" and url.get_driver_name() in ("psycopg2", ""):
            url = url.set(drivername="postgresql+psycopg")
        if backend in ("mysql", "mariadb") and url.get_driver_name() in ("mysqldb", ""):
            url = url.set(drivername=f"{backend}+pymysql")
        return sa.create_engine(url)
    except (ImportError, sa.exc.ArgumentError) as error:
        raise TargetError(f"[target] url: {error}") from None


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", error)).strip().splitlines()[0]


def column_type(portable: str, dialect: str, *, in_key: bool = False) -> Any:
    """The SQLAlchemy type a portable type becomes in a target of `dialect`."""
    from sqlalchemy.dialects import mysql

    kind = base_type(portable)
    sized = portable[portable.index("(") + 1 : -1] if "(" in portable else ""
    if kind == "numeric":
        precision, scale = (int(x) for x in sized.split(",")) if sized else (None, None)
        if dialect == "duckdb":
            # DuckDB's widest is (38,10) by default here; its dialect binds a Decimal as a
            # float, so its values travel as text, which DuckDB reads exactly.
            return _ExactDecimal(precision or 38, scale if scale is not None else 10)
        if precision is not None:
            return sa.Numeric(precision, scale)
        # Unconstrained: the widest the target has (MariaDB's DECIMAL defaults to (10,0)).
        return mysql.DECIMAL(65, 30) if dialect == "mysql" else sa.Numeric()
    if kind == "text":
        if sized:
            return sa.String(int(sized))
        return sa.String(255) if in_key and dialect == "mysql" else sa.Text()
    if dialect == "sqlite" and kind in ("smallint", "integer", "bigint"):
        # SQLite's integers are all 64-bit; declared INTEGER, a table's only key column is
        # the rowid itself (one B-tree, not a table and an index beside it), so loads and
        # look-ups by key do half the work. The loader never binds NULL to it (SQLite
        # would pick a rowid instead of refusing it): see tablefolder.py.
        return sa.Integer()
    if dialect == "mysql":
        special = {
            "timestamp": mysql.DATETIME(fsp=6),
            "timestamptz": mysql.DATETIME(fsp=6),
            "time": mysql.TIME(fsp=6),
            "binary": mysql.LONGBLOB(),
        }
        if kind in special:
            return special[kind]
    return {
        "boolean": sa.Boolean(),
        "smallint": sa.SmallInteger(),
        "integer": sa.Integer(),
        "bigint": sa.BigInteger(),
        "float": sa.Double(),
        "timestamp": sa.DateTime(),
        "timestamptz": sa.DateTime(timezone=True),
        "date": sa.Date(),
        "time": sa.Time(),
        "binary": sa.LargeBinary(),
        "json": sa.JSON(),
    }[kind]


class _ExactDecimal(sa.types.UserDefinedType[Any]):
    """DECIMAL(p,s) whose values are sent as text, untouched (see `column_type`)."""

    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        self.precision = precision
        self.scale = scale

    def get_col_spec(self, **_: Any) -> str:
        return f"DECIMAL({self.precision},{self.scale})"


def target_table(
    schema: TableSchema, dialect: str, *, partitioned: bool = False, meta: sa.MetaData | None = None
) -> sa.Table:
    """The target table for an exported table's schema."""
    options: dict[str, Any] = {}
    if partitioned and dialect == "postgresql":
        first = sa.column(schema.primary_key[0]).compile(dialect=_dialect(dialect))
        options["postgresql_partition_by"] = f"HASH ({first})"
    if partitioned and dialect == "mysql":
        keys = ", ".join(
            str(sa.column(k).compile(dialect=_dialect(dialect))) for k in schema.primary_key
        )
        options["mysql_partition_by"] = f"KEY ({keys})"
        options["mysql_partitions"] = str(PARTITIONS)
    return sa.Table(
        schema.name,
        meta if meta is not None else sa.MetaData(),
        *[
            sa.Column(
                c.name,
                column_type(c.type, dialect, in_key=c.name in schema.primary_key),
                nullable=c.nullable and c.name not in schema.primary_key,
                autoincrement=False,
            )
            for c in schema.columns
        ],
        sa.PrimaryKeyConstraint(*schema.primary_key),
        **options,
    )


def _add_columns(conn: Connection, table: sa.Table, dialect: str) -> None:
    present = set(_column_names(conn, table.name, dialect))
    preparer = conn.dialect.identifier_preparer
    for column in table.columns:
        if column.name in present:
            continue
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN "
            f"{preparer.format_column(column)} {kind}"
        )


def _column_names(conn: Connection, table: str, dialect: str) -> list[str]:
    """A table's column names (DuckDB's SQLAlchemy dialect cannot reflect columns, so the
    servers are asked through information_schema)."""
    if dialect == "sqlite":
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]
    schema = "DATABASE()" if dialect == "mysql" else "current_schema()"
    query = sa.text(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_name = :table AND table_schema = {schema}"
    )
    return [str(row[0]) for row in conn.execute(query, {"table": table})]


def _dialect(name: str) -> sa.engine.Dialect:
    if name == "duckdb":
        import duckdb_engine

        return duckdb_engine.Dialect()
    from sqlalchemy.dialects import registry

    loaded: Any = registry.load(name)
    return loaded()  # type: ignore[no-any-return]


def ddl(schemas: Sequence[TableSchema], dialect: str, *, partitioned: bool = False) -> str:
    """The SQL creating target tables for `schemas` (what `load` would create)."""
    engine_dialect = _dialect(dialect)
    statements = []
    if partitioned and dialect in ("sqlite", "duckdb"):
        statements.append(f"-- {dialect} has no table partitioning: plain tables follow")
    for schema in schemas:
        table = target_table(schema, dialect, partitioned=partitioned)
        create = str(
            sa.schema.CreateTable(table, if_not_exists=True).compile(dialect=engine_dialect)
        )
        statements.append(create.strip() + ";")
        if partitioned and dialect == "postgresql":
            name = engine_dialect.identifier_preparer.format_table(table)
            for part in range(PARTITIONS):
                child = engine_dialect.identifier_preparer.quote(f"{schema.name}_p{part}")
                statements.append(
                    f"CREATE TABLE IF NOT EXISTS {child} PARTITION OF {name} "
                    f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {part});"
                )
    return "\n\n".join(statements) + "\n"
