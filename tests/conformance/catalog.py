"""What a type catalog is made of: tables of edge values, grouped into export units.

Each source database has a catalog (pg_catalog.py, mysql_catalog.py, sqlite_catalog.py)
listing every column type it offers. Most entries are one table per type, made by
`single`: a key `id` and one column `c_<name>` holding one row per edge value, and a last
row of NULL. Entries about keys and names are tables written out in full.

A `Unit` is what is exported and loaded on its own (one table export folder, one entity
run, one load per target): a type whose load fails can then not hide the outcome of the
others. A unit holds more than one table only where the tables must meet in one target
(`Case` and `case`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """A column of a catalog table.

    Attributes:
        name: the column's name.
        sql_type: the type as declared in the source.
        kind: how its values are compared (see canonical.py).
        tested: whether the column is a cell of the matrix (an `id` that only tells rows
            apart is not).
        generated: the source computes it (GENERATED ALWAYS AS …): never inserted.
    """

    name: str
    sql_type: str
    kind: str
    tested: bool = True
    generated: bool = False

    @property
    def type_word(self) -> str:
        """The word of the type that a refusal must name: `numeric(10,2)` gives
        `numeric`, `double precision` gives `double`, `int[]` gives `int`."""
        return re.split(r"[\s(\[]", self.sql_type.strip(), maxsplit=1)[0].lower()


@dataclass(frozen=True)
class Table:
    """A source table: its DDL and rows, as SQL text of the source's dialect.

    Attributes:
        name: the table's name.
        columns: every column, in table order.
        key: the primary-key columns.
        create: the CREATE TABLE statement (and any statement it needs first).
        rows: each row's values as SQL literals, for the columns that are not generated,
            in table order.
        row_id: the column that tells rows apart in reports (the key, or a plain
            numbered column where the key is what is under test).
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    create: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    row_id: str = "id"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def inserted(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if not c.generated)

    @property
    def tested(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.tested)


@dataclass(frozen=True)
class Unit:
    """Tables exported and loaded together, apart from every other unit."""

    name: str
    tables: tuple[Table, ...]
    about: str = ""  # what the unit is for, when its name does not say it


@dataclass(frozen=True)
class Dialect:
    """How a source dialect spells what the catalog needs."""

    name: str
    quote_char: str
    id_type: str = "integer"
    backslash_escapes: bool = False  # MariaDB reads `\n` in a string literal as a newline

    def quote(self, identifier: str) -> str:
        q = self.quote_char
        return q + identifier.replace(q, q + q) + q

    def string(self, text: str) -> str:
        """A string literal holding exactly `text`."""
        if self.backslash_escapes:
            text = text.replace("\\", "\\\\")
        return "'" + text.replace("'", "''") + "'"


@dataclass
class Catalog:
    """A source's units, in the order they are exported."""

    dialect: Dialect
    units: list[Unit] = field(default_factory=list)

    def single(
        self,
        name: str,
        sql_type: str,
        kind: str,
        *values: str,
        before: tuple[str, ...] = (),
        about: str = "",
    ) -> None:
        """A unit of one table `t_<name>`: `id`, and `c_<name> <sql_type>` holding each value
        (an SQL literal) in a row of its own, then NULL. `before`: statements creating what
        the type needs (an enum type, a domain)."""
        table_name, column = f"t_{name}", f"c_{name}"
        q = self.dialect.quote
        create = (
            f"CREATE TABLE {q(table_name)} ({q('id')} {self.dialect.id_type} PRIMARY KEY, "
            f"{q(column)} {sql_type})"
        )
        rows = tuple((str(number), value) for number, value in enumerate((*values, "NULL"), 1))
        columns = (
            Column("id", self.dialect.id_type, "int", tested=False),
            Column(column, sql_type, kind),
        )
        table = Table(table_name, columns, ("id",), (*before, create), rows)
        self.units.append(Unit(name, (table,), about))

    def add(self, name: str, *tables: Table, about: str = "") -> None:
        self.units.append(Unit(name, tables, about))

    def table(self, name: str) -> Table:
        return next(t for unit in self.units for t in unit.tables if t.name == name)


def add_key_tables(cat: Catalog, text_type: str, long_type: str = "", key_type: str = "") -> None:
    """Tables whose keys are text: keys differing only in case or trailing space, a key
    longer than 255 characters, a key of four text columns. Shared by every catalog
    (`text_type` is how the dialect spells a text key column; `long_type` one that holds
    300 characters; `key_type` one of the four key columns)."""
    s_ = cat.dialect.string
    cases = ((s_("A"), "1"), (s_("a"), "2"), (s_("a "), "3"), (s_("b"), "4"))
    cat.add(
        "keys_case",
        keyed_table(cat.dialect, "t_keys_case", {"k_text": text_type}, cases),
        about="text keys differing only in case or a trailing space: 'A', 'a', 'a '",
    )
    long = ((s_("k" * 300), "1"), (s_("k" * 299 + "j"), "2"))
    cat.add(
        "keys_long",
        keyed_table(cat.dialect, "t_keys_long", {"k_text": long_type or text_type}, long),
        about="text keys of 300 characters",
    )
    four = {f"k_part{n}": key_type or text_type for n in range(1, 5)}
    rows = (
        (s_("a"), s_("b"), s_("c"), s_("d"), "1"),
        (s_("a"), s_("b"), s_("c"), s_("e"), "2"),
    )
    cat.add(
        "keys_four",
        keyed_table(cat.dialect, "t_keys_four", four, rows),
        about="a key of four text columns",
    )


def keyed_table(
    dialect: Dialect, name: str, key: dict[str, str], rows: tuple[tuple[str, ...], ...]
) -> Table:
    """A table whose key (column -> type) is what is tested, with a plain `n_row` column
    that tells its rows apart in reports."""
    q = dialect.quote
    columns = ", ".join(f"{q(column)} {sql_type}" for column, sql_type in key.items())
    create = (
        f"CREATE TABLE {q(name)} ({columns}, {q('n_row')} integer, "
        f"PRIMARY KEY ({', '.join(q(column) for column in key)}))"
    )
    return Table(
        name,
        (
            *(Column(column, sql_type, "text") for column, sql_type in key.items()),
            Column("n_row", "integer", "int", tested=False),
        ),
        tuple(key),
        (create,),
        rows,
        row_id="n_row",
    )
