"""The matrix run: a source's catalog created, exported unit by unit both ways, then loaded
into a target of each kind, every cell judged.

`prepare` does the source's part once; `load_cells` then loads every unit into targets of
one kind, one export kind at a time. Units are loaded in catalog order into one target
while each load succeeds (a table-export chain goes on from the unit before); after a unit
whose export or load failed, the next one starts in a fresh target.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.conformance import formats
from tests.conformance.canonical import Canonical
from tests.conformance.catalog import Catalog, Table, Unit
from tests.conformance.compare import judge_table
from tests.conformance.exports import UnitExports, export_units
from tests.conformance.outcomes import FAILED, Cell, Failure, failure_outcome
from tests.conformance.reading import PG_SETTINGS, Row, column_types, read_rows
from tests.conftest import Source
from tests.load.conftest import TargetDb
from tidegate import api
from tidegate.config import Config


@dataclass
class PreparedSource:
    """A source with its catalog created and exported, and what was read back from it."""

    dialect: str
    source: Source
    catalog: Catalog
    config: Config
    rows: dict[str, list[Row]]  # table -> its rows, as the source holds them
    types: dict[str, dict[str, str]]  # table -> column -> type, as the source prints it
    exports: dict[str, UnitExports]  # unit -> its locations (or failures)
    written: dict[str, formats.Written]  # export kind -> the values as written
    canonical: Canonical
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()


def prepare(source: Source, catalog: Catalog, base: Path) -> PreparedSource:
    """Create the catalog's tables in the source, read them back, export every unit both
    ways, and read what each export wrote."""
    create(source, catalog)
    engine = source.engine()
    schema = source.schema or None
    tables = [table for unit in catalog.units for table in unit.tables]
    rows = {t.name: read_rows(engine, t.name, schema) for t in tables}
    types = {t.name: column_types(engine, t.name, schema) for t in tables}
    exports = export_units(source, catalog, base)
    row_ids = {t.name: t.row_id for t in tables}
    written: dict[str, formats.Written] = {"tables": {}, "entities": {}}
    for exported in exports.values():
        if isinstance(exported.tables, Path):
            written["tables"].update(formats.csv_fields(exported.tables, row_ids))
        if isinstance(exported.entities, Path):
            written["entities"].update(formats.json_values(exported.entities, row_ids))
    prepared = PreparedSource(
        source.dialect, source, catalog, source.config(), rows, types, exports, written, Canonical()
    )
    if source.dialect == "postgresql":
        reader = PgText(source)
        prepared.canonical = Canonical(reader)
        prepared.closers.append(reader.close)
    return prepared


def create(source: Source, catalog: Catalog) -> None:
    """Run the catalog's DDL and inserts on the driver's own cursor (no placeholders, so a
    `%` in a value is just a character)."""
    engine = source.engine()
    with engine.begin() as conn:
        cursor = conn.connection.cursor()
        if source.dialect == "postgresql":
            cursor.execute(f"SET LOCAL search_path TO {catalog.dialect.quote(source.schema)}")
        if source.dialect == "mysql":
            cursor.execute("SET time_zone = '+00:00'")  # TIMESTAMP literals are UTC
        for unit in catalog.units:
            for table in unit.tables:
                for statement in table.create:
                    cursor.execute(statement)
                cursor.execute(_insert(catalog, table))
        cursor.close()


def _insert(catalog: Catalog, table: Table) -> str:
    q = catalog.dialect.quote
    columns = ", ".join(q(c.name) for c in table.inserted)
    values = ", ".join("(" + ", ".join(row) + ")" for row in table.rows)
    return f"INSERT INTO {q(table.name)} ({columns}) VALUES {values}"


class PgText:
    """PostgreSQL's own text of a value read as a type (`'P1M'::interval` gives `1 mon`),
    or None when the source cannot read it as that type. Cached: the same texts come
    back from every target."""

    def __init__(self, source: Source) -> None:
        self.lock = threading.Lock()  # one connection, asked by every loading thread
        self.engine = sa.create_engine(source.url, isolation_level="AUTOCOMMIT")
        self.conn = self.engine.connect()
        for setting in PG_SETTINGS:
            self.conn.exec_driver_sql(setting.replace("SET LOCAL", "SET"))
        self.cache: dict[tuple[str, str], str | None] = {}

    def __call__(self, text: str, sql_type: str) -> str | None:
        key = (text, sql_type)
        with self.lock:
            if key not in self.cache:
                self.cache[key] = self._read(text, sql_type)
            return self.cache[key]

    def _read(self, text: str, sql_type: str) -> str | None:
        try:
            read = self.conn.exec_driver_sql(f"SELECT CAST(%s AS {sql_type})::text", (text,))
            value = read.scalar()
        except sa.exc.DBAPIError:
            return None
        return None if value is None else str(value)

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


def load_cells(
    prepared: PreparedSource, target: str, kind: str, new_target: Callable[[], TargetDb]
) -> list[Cell]:
    """Every cell of the source's catalog loaded by `kind` into targets of dialect
    `target` (`new_target` makes a fresh one)."""
    cells: list[Cell] = []
    current: TargetDb | None = None
    for unit in prepared.catalog.units:
        exported = prepared.exports[unit.name].of(kind)
        if isinstance(exported, Failure):
            cells += _failed(prepared, unit, target, kind, exported, None)
            _dispose(current)  # the chain does not go on past a missing export
            current = None
            continue
        current = current or new_target()
        try:
            api.load(prepared.config, location=str(exported), target_url=current.url)
        except Exception as error:  # every error is an outcome of the matrix
            cells += _failed(prepared, unit, target, kind, Failure.of("load", error), current)
            _dispose(current)  # nor past a load that failed
            current = None
            continue
        cells += _judged(prepared, unit, target, kind, current)
    _dispose(current)
    return cells


def _dispose(target: TargetDb | None) -> None:
    if target is not None:
        target.dispose()


def _failed(
    prepared: PreparedSource,
    unit: Unit,
    target: str,
    kind: str,
    failure: Failure,
    held: TargetDb | None,
) -> list[Cell]:
    """The cells of a unit whose export or load stopped: REFUSED or FAILED."""
    cells = []
    for table in unit.tables:
        written = held is not None and _holds_rows(held, table.name)
        outcome = failure_outcome(failure, table.name, table.columns, written)
        detail = failure.line() + (" (rows were written)" if written else "")
        cells += [
            _cell(prepared, target, kind, table, column.name, outcome, detail=detail)
            for column in table.tested
        ]
    return cells


def _holds_rows(target: TargetDb, table: str) -> bool:
    """Whether a table in the target holds any row (False when there is no such table)."""
    engine = sa.create_engine(target.url)
    try:
        if not column_types(engine, table):
            return False
        with engine.connect() as conn:
            name = engine.dialect.identifier_preparer.quote(table)
            return conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar() != 0
    finally:
        engine.dispose()


def _judged(
    prepared: PreparedSource, unit: Unit, target: str, kind: str, held: TargetDb
) -> list[Cell]:
    """The cells of a unit that loaded: each column compared with the source."""
    engine = sa.create_engine(held.url)  # disposed at once: DuckDB files lock themselves
    cells = []
    try:
        for table in unit.tables:
            types = column_types(engine, table.name)
            if not types:
                cells += [
                    _cell(prepared, target, kind, table, c.name, FAILED, detail=_ABSENT)
                    for c in table.tested
                ]
                continue
            rows = read_rows(engine, table.name)
            verdicts = judge_table(table, prepared.rows[table.name], rows, kind, prepared.canonical)
            cells += [
                _cell(
                    prepared,
                    target,
                    kind,
                    table,
                    v.column,
                    v.outcome,
                    target_type=types.get(v.column, ""),
                    detail=v.detail,
                    contract_loss=v.contract_loss,
                )
                for v in verdicts
            ]
    finally:
        engine.dispose()
    return cells


_ABSENT = "the load went through, but the table is not in the target (a partial write)"


def _cell(
    prepared: PreparedSource,
    target: str,
    kind: str,
    table: Table,
    column: str,
    outcome: str,
    **more: Any,
) -> Cell:
    sql_type = table.column(column).sql_type or "(none)"
    return Cell(prepared.dialect, target, kind, table.name, column, sql_type, outcome, **more)
