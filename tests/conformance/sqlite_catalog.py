"""SQLite's column affinities, the type names applications declare, and the values SQLite
keeps whatever a column is declared as (see catalog.py).

A SQLite column may hold any value: a column whose values all have its affinity's storage
class is compared by that type's rules; one holding several storage classes (kind
`sqlite`) by storage class and value.
"""

from __future__ import annotations

from tests.conformance.catalog import Catalog, Dialect, add_key_tables

SQLITE = Dialect("sqlite", '"')
s = SQLITE.string

TEXTS = (
    "",
    " ",
    "a  ",
    "ünïcødé 日本 🎉",
    "line1\nline2\r\nend",
    'say "hi", it\'s',
    "\\N",
    "\\.",
)
ALL_BYTES = "X'" + bytes(range(256)).hex() + "'"


def catalog() -> Catalog:
    cat = Catalog(SQLITE)
    cat.single(
        "integer",
        "INTEGER",
        "int",
        "0",
        "-1",
        str(2**63 - 1),
        str(-(2**63)),
    )
    cat.single(
        "real",
        "REAL",
        "float",
        "0.0",
        "0.1",
        "1.7976931348623157e308",
        "5e-324",
    )
    cat.single("real_infinity", "REAL", "float", "9e999", "-9e999", about="9e999 is +Infinity")
    cat.single("text", "TEXT", "text", *(s(t) for t in TEXTS))
    cat.single("text_nul", "TEXT", "text", "'nul' || char(0) || 'inside'", about="a NUL character")
    cat.single("blob", "BLOB", "bytes", "X''", "X'00ff20'", ALL_BYTES)
    cat.single(
        "numeric",
        "NUMERIC",
        "sqlite",
        "1",
        "1.5",
        "'12345678901234567890'",
        "'1.10'",
        "'abc'",
        about="NUMERIC affinity: text that looks like a number is stored as one",
    )
    cat.single(
        "untyped",
        "",
        "sqlite",
        "1",
        "1.5",
        s("text"),
        "X'0102'",
        s(""),
        about="a column without a declared type, holding every storage class",
    )
    cat.single(
        "mixed",
        "INTEGER",
        "sqlite",
        "1",
        s("abc"),
        "2.5",
        "X'00'",
        about="an INTEGER column holding text, a real and a blob",
    )
    cat.single("blob_in_text", "TEXT", "sqlite", "X'00ff'", "X''", about="blobs in a TEXT column")
    _declared(cat)
    add_key_tables(cat, "TEXT")
    return cat


def _declared(cat: Catalog) -> None:
    """Type names applications declare, which SQLAlchemy reads as types."""
    cat.single(
        "datetime",
        "DATETIME",
        "timestamp",
        s("2024-01-02 03:04:05.123456"),
        s("2024-01-02 03:04:05"),
    )
    cat.single("date", "DATE", "date", s("2024-02-29"))
    cat.single("boolean", "BOOLEAN", "bool", "0", "1")
    cat.single("decimal_10_2", "DECIMAL(10,2)", "float", "1.1", "12345678.99")
    cat.single("varchar_10", "VARCHAR(10)", "text", s(""), s("a  "))
    cat.single("json", "JSON", "json", s('{"a": 1.10, "b": 12345678901234567890.123}'))
