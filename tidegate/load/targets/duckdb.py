"""DuckDB as a target: a local file that locks itself, PostgreSQL's SQL for merging.

DuckDB's SQLAlchemy dialect binds a Decimal as a float, so exact numerics travel as text,
which DuckDB reads exactly. Its widest DECIMAL has 38 digits: a numeric with more, or
without a precision (which may hold any number of digits), is refused before anything is
written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from tidegate.formats.manifest import TableEntry
from tidegate.formats.tableschema import ColumnSchema, TableSchema, base_type, type_size
from tidegate.load import staging
from tidegate.load.archive import ExportArchive
from tidegate.load.targets.base import Parse, TargetDialect, rebuild

MEMBER = "tidegate_member"  # the name a member's record batches are scanned by


class DuckDBTarget(TargetDialect):
    name = "duckdb"
    opens_file = True
    folds_table_names = True

    def make_engine(self, url: URL) -> Engine:
        engine = super().make_engine(url)
        _quote_everything(engine.dialect)
        return engine

    def sql_dialect(self) -> sa.engine.Dialect:
        import duckdb_engine

        dialect = duckdb_engine.Dialect()
        _quote_everything(dialect)
        return dialect

    def column_type(self, portable: str, *, in_key: bool = False) -> Any:
        kind = base_type(portable)
        if kind == "numeric":
            precision, scale = type_size(portable)
            return _Spelled(f"DECIMAL({precision},{scale})")
        if kind == "varbit":
            return _Spelled("BIT")  # a string of bits of any length
        return super().column_type(portable, in_key=in_key)

    def fill_stage(
        self,
        conn: Connection,
        stage: sa.Table,
        archive: ExportArchive,
        member: str,
        columns: Sequence[str],
    ) -> int:
        """The member's Arrow batches scanned by DuckDB itself (`INSERT … SELECT` from a
        registered batch): no Python object per value, where `executemany` spent most of
        a load."""
        raw: Any = conn.connection.driver_connection
        preparer = conn.dialect.identifier_preparer
        names = ", ".join(preparer.quote(c) for c in columns)
        insert = f"INSERT INTO {preparer.format_table(stage)} ({names}) SELECT {names} FROM "
        count = 0
        for number, batch in enumerate(archive.batches(member, columns)):
            view = f"tidegate_batch_{number}"
            raw.register(view, batch)
            try:
                raw.execute(insert + view)
            finally:
                raw.unregister(view)
            count += batch.num_rows
        return count

    def insert_rows(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """The rows as one Arrow table, which DuckDB scans itself (`INSERT … SELECT`),
        about 12x the rows/s of `executemany`; values Arrow cannot put in one column (of
        mixed kinds) go by `executemany`, as before."""
        # Imported here: a load into another target does not pay for them (40 MiB).
        import duckdb
        import pyarrow as pa

        dialect = conn.dialect
        columns = {}
        try:
            for column in table.columns:
                process = column.type.dialect_impl(dialect).bind_processor(dialect)
                values = [row[column.name] for row in rows]
                if process is not None:
                    values = [None if v is None else process(v) for v in values]
                columns[column.name] = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            super().insert_rows(conn, table, rows)
            return
        raw: Any = conn.connection.driver_connection
        preparer = dialect.identifier_preparer
        names = ", ".join(preparer.quote(name) for name in columns)
        raw.register("tidegate_rows", pa.table(columns))
        try:
            raw.execute(
                f"INSERT INTO {preparer.format_table(table)} ({names}) "
                f"SELECT {names} FROM tidegate_rows"
            )
        except duckdb.Error as error:  # as SQLAlchemy would have raised it
            raise sa.exc.DBAPIError("INSERT", None, error) from None
        finally:
            raw.unregister("tidegate_rows")

    def alter_columns(self, conn: Connection, table: sa.Table, columns: Sequence[str]) -> None:
        # DuckDB changes no type of a key column in place.
        if any(table.c[name].primary_key for name in columns):
            rebuild(conn, table)
        else:
            super().alter_columns(conn, table, columns)

    def refusal(self, portable: str) -> str | None:
        if base_type(portable) != "numeric":
            return None
        size = type_size(portable)
        if not size:
            return (
                "DuckDB's DECIMAL holds at most 38 digits, and a numeric without a "
                "precision holds any number of them"
            )
        if size[0] > MAX_DIGITS:
            return f"DuckDB's DECIMAL holds at most {MAX_DIGITS} digits"
        return None

    def cast(
        self, value: sa.ColumnElement[Any], kind: str, target_type: Any
    ) -> sa.ColumnElement[Any]:
        return super().cast(_readable(value, kind), kind, target_type)

    def load_rows(
        self,
        conn: Connection,
        table: sa.Table,
        archive: ExportArchive,
        files_rows: str,
        schema: TableSchema,
        entry: TableEntry,
    ) -> None:
        """The member's Arrow batches upserted straight into the table in one statement:
        DuckDB scans a record-batch reader itself, streaming, so no staging table (which
        was half of a load) and no statement per batch. A value DuckDB would read wrong is
        refused inside the statement (`typed`); should the statement fail, the column is
        found apart from the target (DuckDB has no savepoints, and a failed statement
        ends its transaction): each column's conversion tried over the member again."""
        columns = [c.name for c in schema.columns]
        counted = [0]

        def batches() -> Iterator[Any]:
            for batch in archive.batches(files_rows, columns):
                counted[0] += batch.num_rows
                yield batch

        def upsert() -> int:
            raw: Any = conn.connection.driver_connection
            raw.register(MEMBER, _reader(columns, batches()))
            try:
                conn.execute(self.upsert(table, _member(columns), schema))  # type: ignore[arg-type]
            except sa.exc.DBAPIError as error:
                where = f"{archive.where}/{files_rows}"
                column = self._failing_member_column(archive, files_rows, schema, table)
                raise staging.refusal(where, schema, error, column) from None
            raw.unregister(MEMBER)  # (after a failure, the transaction is rolled back)
            return counted[0]

        staging.counted(archive, files_rows, entry.rows, upsert, schema)

    def typed(
        self, stage: sa.Table, table: sa.Table, schema: TableSchema, column: str
    ) -> sa.ColumnElement[Any]:
        """As every target converts, but a value DuckDB would read as another is refused
        in the statement (`error()`): a date-time before year 1 (read as the same date
        AD), an empty bit string (read as 0)."""
        value = super().typed(stage, table, schema, column)
        staged = stage.c[column]
        kind = base_type(schema.column(column).type)
        wrong: sa.ColumnElement[bool]
        if kind in ("timestamp", "timestamptz"):
            wrong = staged.like("% BC")
        elif kind == "varbit":
            wrong = staged == ""
        else:
            return value
        refused = sa.func.error(f"column {column}: a value DuckDB would read as another")
        return sa.case((wrong, refused), else_=value)

    def _failing_member_column(
        self, archive: ExportArchive, member: str, schema: TableSchema, table: sa.Table
    ) -> ColumnSchema | None:
        """The first column of the member holding a value the target's type cannot hold,
        found by one scan of the member in an in-memory DuckDB."""
        import duckdb

        columns = [c.name for c in schema.columns]
        staged = _member(columns)
        checks = {
            column.name: self._unconvertible(
                staged.c[column.name], column, table.c[column.name].type
            )
            for column in schema.columns
            if base_type(column.type) != "text"
        }
        if not checks:
            return None
        query = sa.select(*checks.values()).select_from(staged)
        sql = query.compile(dialect=self.sql_dialect(), compile_kwargs={"literal_binds": True})
        with duckdb.connect() as scratch:
            scratch.register(MEMBER, _reader(columns, archive.batches(member, columns)))
            found = scratch.execute(str(sql)).fetchone() or ()
        return next(
            (schema.column(name) for name, failed in zip(checks, found, strict=True) if failed),
            None,
        )

    def _unconvertible(
        self, staged: sa.ColumnElement[Any], column: ColumnSchema, target_type: Any
    ) -> sa.ColumnElement[Any]:
        """Whether some staged value of a column does not convert (an aggregate)."""
        kind = base_type(column.type)
        value = _readable(self.empty_as_null(staged), kind)
        failed: sa.ColumnElement[bool] = sa.and_(
            value.is_not(None), sa.try_cast(value, target_type).is_(None)
        )
        if kind in ("timestamp", "timestamptz"):
            # DuckDB reads a date-time before year 1 as the same date AD: refused.
            failed = sa.or_(failed, value.like("% BC"))
        if kind == "varbit":  # DuckDB's BIT has no empty bit string ('' reads as 0)
            failed = sa.or_(failed, staged == "")
        return sa.func.coalesce(sa.func.bool_or(failed), False)

    def entity_parser(self, kind: str, parse: Parse) -> Parse:
        if kind == "numeric":
            return lambda value: str(parse(value))  # the text keeps every digit
        if kind in ("interval", "duration"):
            return lambda value: str(parse(value)).replace("+", "")
        if kind == "date":
            return lambda value: _bc_date(parse(value))
        if kind in ("timestamp", "timestamptz"):
            return lambda value: _no_bc(parse(value))
        return parse


MAX_DIGITS = 38


def _readable(value: sa.ColumnElement[Any], kind: str) -> sa.ColumnElement[Any]:
    """A staged text as DuckDB reads its kind: PostgreSQL writes a mixed-sign interval as
    "-1 days +02:00:00" (DuckDB reads it without the plus) and a date before year 1 as
    "0044-03-15 BC" (DuckDB reads "0044-03-15 (BC)")."""
    if kind in ("interval", "duration"):
        return sa.func.replace(value, "+", "")
    if kind == "date":
        return sa.func.replace(value, " BC", " (BC)")
    return value


def _member(columns: Sequence[str]) -> sa.TableClause:
    """A member's records as DuckDB scans them (`_reader`), every column text."""
    return sa.table(MEMBER, *[sa.column(c, sa.Text) for c in columns])


def _reader(columns: Sequence[str], batches: Iterator[Any]) -> Any:
    """A member's Arrow batches of strings as one record-batch reader, which DuckDB scans
    by the name it is registered under, streaming."""
    import pyarrow as pa

    strings = pa.schema([(c, pa.string()) for c in columns])
    return pa.RecordBatchReader.from_batches(strings, batches)


def _bc_date(value: Any) -> Any:
    return value.replace(" BC", " (BC)") if isinstance(value, str) else value


def _no_bc(value: Any) -> Any:
    if isinstance(value, str) and value.endswith(" BC"):
        raise ValueError("DuckDB reads a date-time before year 1 as the same date AD")
    return value


def _quote_everything(dialect: sa.engine.Dialect) -> None:
    """Quote every identifier: the dialect's list of DuckDB's keywords is short of
    DuckDB's own (a column named `at` went unquoted)."""
    preparer: Any = dialect.identifier_preparer
    preparer._requires_quotes = lambda _value: True


class _Spelled(sa.types.UserDefinedType[Any]):
    """A type DuckDB knows by this spelling, whose values are sent as text, untouched
    (its dialect would bind a Decimal as a float)."""

    cache_ok = True

    def __init__(self, spelling: str) -> None:
        self.spelling = spelling

    def get_col_spec(self, **_: Any) -> str:
        return self.spelling
