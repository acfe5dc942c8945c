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
  any record older than it is skipped;
- `tidegate_table_shape`: per table, the shape it was made or migrated for;

and `tidegate_load_run` keeps the history of loads (written outside their transactions).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate import logs, urls
from tidegate.errors import ConfigError, LoadError, TargetError
from tidegate.formats.tableschema import TableSchema
from tidegate.load.targets import DIALECTS, TargetDialect
from tidegate.model import RunRecord, RunStatus, from_us, now_us

T = TypeVar("T")
US = timedelta(microseconds=1)

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


def version_key(key: Sequence[str]) -> tuple[str, str]:
    """(pk, key sha1) of an entity key as `tidegate_entity_version` keeps it: the PK
    fields as `json.dumps` writes the list (ASCII, `", "` between), and that text's sha1.
    Both ways of applying a run (entityrun, entitysql) key versions by it."""
    if all(k.isascii() and k.isprintable() and '"' not in k and "\\" not in k for k in key):
        pk = '["' + '", "'.join(key) + '"]'  # json.dumps' text, without its per-call cost
    else:
        pk = json.dumps(list(key))
    return pk, hashlib.sha1(pk.encode()).hexdigest()


shape_table = sa.Table(
    "tidegate_table_shape",
    metadata,
    # Keyed by the name's sha1: a text key would compare as the target's collation does
    # (MariaDB's tells "Case" from "case" no more than "a" from "a ").
    sa.Column("name_sha1", sa.String(40), primary_key=True),
    sa.Column("table_name", sa.Text, nullable=False),
    sa.Column("shape_sha1", sa.String(40), nullable=False),  # `shape_of` the table's schema
    sa.Column("shape_json", sa.Text),  # what it is of (NULL: recorded before tidegate 0.2)
)
initial_table = sa.Table(
    "tidegate_entity_initial",
    metadata,
    sa.Column("entity", sa.String(255), primary_key=True),
    sa.Column("created", sa.String(40), nullable=False),  # start of the newest initial run
)
# The run history of loads, kept where they write (the source's `tidegate_run` holds the
# other jobs'): `tidegate runs`, the API and the dashboard read both.
load_run_table = sa.Table(
    "tidegate_load_run",
    metadata,
    sa.Column("run_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | succeeded | failed
    sa.Column("started_us", sa.BigInteger, nullable=False),
    sa.Column("ended_us", sa.BigInteger),
    sa.Column("exports", sa.Integer, nullable=False, default=0),  # applied: folders and runs
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),  # rows and records applied
    sa.Column("error", sa.Text, nullable=False, default=""),
)


class Target:
    """A target database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed, kind = urls.parse(url, "[target] url", DIALECTS, "sqlite:///target.db")
        except ConfigError as error:
            raise TargetError(error.message, error.hint) from None
        self.dialect: TargetDialect = DIALECTS[kind]()
        try:
            self.engine = self.dialect.make_engine(parsed)
        except (ImportError, sa.exc.ArgumentError) as error:
            raise TargetError(f"[target] url: {error}") from None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One load at a time per target: a session lock on the server (PostgreSQL's
        advisory lock, MariaDB's GET_LOCK), named after the target's database (and
        schema), held for the whole load. SQLite and DuckDB files lock themselves."""
        lock = self.dialect.load_lock
        if lock is None:
            yield
            return
        with self._connected() as conn:
            params = lock.params(self._lock_name(conn))
            taken = conn.execute(sa.text(lock.take), params).scalar()
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
                    conn.execute(sa.text(lock.release), params)
                    conn.commit()

    @contextlib.contextmanager
    def _connected(self) -> Iterator[Connection]:
        """A connection; a server that cannot be reached, or refuses the user or its
        password, is one line naming the target."""
        try:
            conn = self.engine.connect()
        except sa.exc.DBAPIError as error:
            raise TargetError(
                f"[target] url: cannot connect to {self.safe_url}: {_first_line(error)}",
                "check that the server is running and the URL, user and password are right",
            ) from None
        with conn:
            yield conn

    def _lock_name(self, conn: Connection) -> str:
        """The lock of this target: its database and schema, not the whole server.

        A MariaDB `GET_LOCK` name is one namespace for the whole server, and a PostgreSQL
        advisory lock one for the whole database, so a fixed name would make loads into two
        different targets on one server (or two schemas of one database) refuse each other.
        """
        place = "/".join(str(part) for part in conn.execute(sa.text(self.dialect.place_sql)).one())
        return self.dialect.lock_name(place)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction on the target; a lost connection is one error line, and the
        transaction is rolled back (a value the target refuses is the loader's to name:
        `staging.refusal`)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as error:
            raise TargetError(f"target {self.safe_url}: {_first_line(error)}") from None

    def record_applied(self, conn: Connection, export: str, kind: str, position: int) -> None:
        """Record an export as applied, in the transaction that applied it. Its key is
        the export's name: a second load applying the same export at the same time
        fails here, and its transaction is rolled back."""
        values = {
            "export": export,
            "kind": kind,
            "applied_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "position": position,
        }
        try:
            conn.execute(applied_table.insert().values(values))
        except sa.exc.IntegrityError as error:
            raise TargetError(
                f"target {self.safe_url}: another load applied {export} at the same time "
                f"({_first_line(error)}); this one was rolled back",
                "run one load at a time per target; run it again to apply what is left",
            ) from None

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def prepare(
        self,
        schemas: Sequence[TableSchema],
        where: str,
        whole: Collection[str] = (),
        *,
        entity_records: bool = False,
    ) -> dict[str, sa.Table]:
        """Create missing tables (and the control tables), add missing columns; the target's
        tables for `schemas`, by name. A table whose shape (columns, types, key) differs
        from the one it was made for changed in the source (tables/drift.py): in `whole`
        (its every row is in the export) it is dropped and created again, else migrated
        (columns added, types widened, NOT NULL dropped). `entity_records`: the rows come
        as entity records, which replace their entity's rows; a table's key is not
        changed for them (docs/schema-changes.md).

        Raises:
            LoadError: a column of a type the target cannot hold exactly, a name the target
                cannot tell from another, or a changed key in an export that does not hold
                the table whole (`where` names the export); nothing was written.
        """
        for schema in schemas:
            refuse_unheld(schema, self.dialect, where)
        return self._ddl(lambda conn: self._prepare(conn, schemas, where, whole, entity_records))

    def _prepare(
        self,
        conn: Connection,
        schemas: Sequence[TableSchema],
        where: str,
        whole: Collection[str],
        entity_records: bool,
    ) -> dict[str, sa.Table]:
        metadata.create_all(conn)
        for made_by_older in (version_table, shape_table):
            _add_columns(conn, made_by_older, self.dialect)
        existing = set(sa.inspect(conn).get_table_names())
        refuse_clashing_names(schemas, existing, self.dialect, where)
        columns = shape_table.c
        query = sa.select(columns.table_name, columns.shape_sha1, columns.shape_json)
        shapes = {name: (sha1, detail) for name, sha1, detail in conn.execute(query)}
        tables = {}
        for schema in schemas:
            table = target_table(schema, self.dialect)
            shape = shape_of(schema)
            known, before = shapes.get(schema.name, (None, None))
            if schema.name in existing and schema.name in whole and known not in (None, shape):
                table.drop(conn)
                existing.discard(schema.name)
            if schema.name not in existing:
                table.create(conn)
            else:
                _add_columns(conn, table, self.dialect)
                if known not in (None, shape):
                    self._migrate(conn, schema, table, before, where, entity_records)
            if known != shape:
                _record_shape(conn, schema, shape, new=known is None)
            tables[schema.name] = table
        return tables

    def _migrate(
        self,
        conn: Connection,
        schema: TableSchema,
        table: sa.Table,
        before: str | None,
        where: str,
        entity_records: bool,
    ) -> None:
        """Bring a table made for an earlier shape (`before`, recorded with it) to
        `schema`'s, its rows kept."""
        old = json.loads(before) if before else None
        if not entity_records and old is not None and old["key"] != list(schema.primary_key):
            raise LoadError(
                f"{where}: table {schema.name!r} has a new key, and the export does not hold "
                "the table whole",
                "load exports written by tidegate, which writes such a table whole",
            )
        old_columns = {name: (kind, null) for name, kind, null in old["columns"]} if old else {}
        altered = [
            c.name
            for c in schema.columns
            if old is None  # recorded before the shape was: every column, to be sure
            or (c.name in old_columns and old_columns[c.name] != (c.type, c.nullable))
        ]
        if altered:
            self.dialect.alter_columns(conn, table, altered)

    def ping(self) -> None:
        """Connect and run a trivial query (a readiness probe).

        Raises:
            TargetError: the target cannot be reached (one line).
        """
        with self._connected() as conn:
            conn.execute(sa.text("SELECT 1"))

    def start_run(self, keep: timedelta) -> RunRecord:
        """Record the start of a load (under `exclusive`); runs of more than `keep` ago
        are forgotten, and a run left `running` by a dead process is marked `abandoned`."""

        def start(conn: Connection) -> RunRecord:
            metadata.create_all(conn)
            columns = load_run_table.c
            started = now_us()
            conn.execute(load_run_table.delete().where(columns.started_us < started - keep // US))
            conn.execute(
                load_run_table.update()
                .where(columns.status == "running")
                .values(status="abandoned", error="the process running it stopped")
            )
            last = conn.execute(sa.select(sa.func.max(columns.run_number))).scalar()
            record = RunRecord("load", (last or 0) + 1, "running", from_us(started))
            values = {"run_number": record.run_number, "status": "running", "started_us": started}
            conn.execute(load_run_table.insert().values(values))
            return record

        record = self._ddl(start)
        logs.run_started(record)
        return record

    def finish_run(
        self, record: RunRecord, status: RunStatus, exports: int, rows: int, error: str = ""
    ) -> RunRecord:
        """Record the end of a load."""
        ended = now_us()
        with self.engine.begin() as conn:
            conn.execute(
                load_run_table.update()
                .where(load_run_table.c.run_number == record.run_number)
                .values(status=status, ended_us=ended, exports=exports, rows=rows, error=error)
            )
        final = replace(
            record, status=status, ended_at=from_us(ended), rows=rows, files=exports, error=error
        )
        logs.run_ended(final)
        return final

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        """The loads recorded here, newest first (none before the first)."""
        with self._connected() as conn:
            if not sa.inspect(conn).has_table(load_run_table.name):
                return []
            query = sa.select(load_run_table).order_by(load_run_table.c.run_number.desc())
            rows = conn.execute(query.limit(limit) if limit is not None else query)
            return [
                RunRecord(
                    "load",
                    row.run_number,
                    row.status,
                    from_us(row.started_us),
                    from_us(row.ended_us) if row.ended_us is not None else None,
                    rows=row.rows,
                    files=row.exports,
                    error=row.error,
                )
                for row in rows
            ]

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


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", error)).strip().splitlines()[0]


def target_table(
    schema: TableSchema,
    dialect: TargetDialect,
    *,
    partitioned: bool = False,
    meta: sa.MetaData | None = None,
) -> sa.Table:
    """The target table for an exported table's schema."""
    return sa.Table(
        schema.name,
        meta if meta is not None else sa.MetaData(),
        *[
            sa.Column(
                c.name,
                dialect.column_type(c.type, in_key=c.name in schema.primary_key),
                nullable=c.nullable and c.name not in schema.primary_key,
                autoincrement=False,
            )
            for c in schema.columns
        ],
        dialect.key_constraint(schema),
        **dialect.table_options(schema, partitioned=partitioned),
    )


def refuse_unheld(schema: TableSchema, dialect: TargetDialect, where: str) -> None:
    """Refuse a table with a column of a type the target cannot hold exactly."""
    for column in schema.columns:
        reason = dialect.refusal(column.type)
        if reason is not None:
            raise LoadError(
                f"{where}: {column.described(schema.name)}: {reason}",
                f"load it into a target that holds it (docs/types.md), or leave the table "
                f"out of the export with [tables] exclude = [{schema.name!r}]",
            )


def refuse_clashing_names(
    schemas: Sequence[TableSchema], existing: set[str], dialect: TargetDialect, where: str
) -> None:
    """Refuse two tables (or two columns of a table) whose names differ only in case,
    where the target does not tell such names apart: one would take the other's rows."""
    if dialect.folds_table_names:
        seen = {name.casefold(): name for name in existing if not name.startswith("tidegate_")}
        for schema in schemas:
            other = seen.setdefault(schema.name.casefold(), schema.name)
            if other != schema.name:
                raise _clash(where, f"tables {other!r} and {schema.name!r}", dialect)
    for schema in schemas if dialect.folds_column_names else ():
        columns: dict[str, str] = {}
        for column in schema.columns:
            other = columns.setdefault(column.name.casefold(), column.name)
            if other != column.name:
                raise _clash(
                    where, f"table {schema.name!r}: columns {other!r} and {column.name!r}", dialect
                )


def _clash(where: str, names: str, dialect: TargetDialect) -> LoadError:
    return LoadError(
        f"{where}: {names} differ only in case, and {dialect.name} does not tell such names apart",
        "rename one of them in the source, or load into a target that tells them apart "
        "(PostgreSQL)",
    )


def shape_of(schema: TableSchema) -> str:
    """A fingerprint of a table's shape: its columns with their types and NULL-ness, and
    its key."""
    return _sha1(_shape_json(schema))


def _shape_json(schema: TableSchema) -> str:
    columns = [[c.name, c.type, c.nullable] for c in schema.columns]
    return json.dumps({"columns": columns, "key": list(schema.primary_key)})


def _record_shape(conn: Connection, schema: TableSchema, shape: str, *, new: bool) -> None:
    key = _sha1(schema.name)
    values = {"shape_sha1": shape, "shape_json": _shape_json(schema)}
    if new:
        conn.execute(shape_table.insert().values(name_sha1=key, table_name=schema.name, **values))
    else:
        where = shape_table.c.name_sha1 == key
        conn.execute(shape_table.update().where(where).values(**values))


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _add_columns(conn: Connection, table: sa.Table, dialect: TargetDialect) -> None:
    present = set(dialect.column_names(conn, table.name))
    preparer = conn.dialect.identifier_preparer
    for column in table.columns:
        if column.name in present:
            continue
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN "
            f"{preparer.format_column(column)} {kind}"
        )


def ddl(
    schemas: Sequence[TableSchema], dialect: TargetDialect, *, partitioned: bool = False
) -> str:
    """The SQL creating target tables for `schemas` (what `load` would create)."""
    engine_dialect = dialect.sql_dialect()
    statements = []
    if partitioned and not dialect.partitioned:
        statements.append(f"-- {dialect.name} has no table partitioning: plain tables follow")
    for schema in schemas:
        table = target_table(schema, dialect, partitioned=partitioned)
        create = str(
            sa.schema.CreateTable(table, if_not_exists=True).compile(dialect=engine_dialect)
        )
        statements.append(create.strip() + ";")
        if partitioned:
            statements += dialect.partition_statements(schema, table)
    return "\n\n".join(statements) + "\n"
