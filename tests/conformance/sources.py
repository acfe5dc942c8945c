"""A source of the matrix: its catalog created, read back exactly, and exported unit by
unit both ways (exports.py), with what each export wrote (formats.py).

Done once per source shard and test session; loads.py then loads the exports into every
target.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from tests.conformance import formats
from tests.conformance.canonical import Canonical
from tests.conformance.catalog import Catalog, Table
from tests.conformance.exports import UnitExports, export_units
from tests.conformance.reading import PG_SETTINGS, Row, column_types, read_rows
from tests.conftest import Source
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
