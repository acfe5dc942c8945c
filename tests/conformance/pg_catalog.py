"""Every PostgreSQL column type, with its edge values (see catalog.py)."""

from __future__ import annotations

from tests.conformance.catalog import Catalog, Column, Dialect, Table, add_key_tables

PG = Dialect("postgresql", '"')
s = PG.string
q = PG.quote

# Texts that trip CSV and COPY: quotes, separators, line ends, COPY's own markers (`\N` is
# the text format's NULL, `\.` a line ending the data), non-ASCII, trailing spaces.
NASTY_TEXTS = (
    "",
    " ",
    "a  ",
    "ünïcødé 日本 🎉",
    "line1\nline2\r\nline3\rend",
    'say "hi", it\'s',
    "tab\there",
    "\\N",
    "\\.",
    "NULL",
)
ALL_BYTES = "'\\x" + bytes(range(256)).hex() + "'::bytea"


def catalog() -> Catalog:
    cat = Catalog(PG)
    _numbers(cat)
    _texts(cat)
    _times(cat)
    _others(cat)
    _keys_and_names(cat)
    return cat


def _numbers(cat: Catalog) -> None:
    cat.single("smallint", "smallint", "int", "-32768", "32767", "0")
    cat.single("integer", "integer", "int", "-2147483648", "2147483647", "0")
    cat.single("bigint", "bigint", "int", "-9223372036854775808", "9223372036854775807", "0")
    cat.single(
        "numeric",
        "numeric",
        "decimal",
        "0",
        "1.10",
        "-1.5",
        "12345678901234567890.123456789",
        "0.000000000000000000000000000000000000001",
        "0.30000000000000004441",
        about="unconstrained: any scale, every digit kept",
    )
    cat.single(
        "numeric_huge",
        "numeric",
        "decimal",
        "9" * 1000,
        "-" + "1" * 500 + "." + "2" * 500,
        about="values of 1000 digits",
    )
    cat.single("numeric_special", "numeric", "decimal", "'NaN'", "'Infinity'", "'-Infinity'")
    cat.single(
        "numeric_10_2",
        "numeric(10,2)",
        "decimal",
        "99999999.99",
        "-99999999.99",
        "0.01",
        "1.10",
        "0",
    )
    cat.single(
        "numeric_38_10",
        "numeric(38,10)",
        "decimal",
        "9999999999999999999999999999.9999999999",
        "-0.0000000001",
    )
    cat.single("numeric_40_0", "numeric(40,0)", "decimal", "9" * 40, "-" + "9" * 40)
    cat.single("numeric_5_neg2", "numeric(5,-2)", "decimal", "9999900", "-100")
    specials = ("'-0'", "'NaN'", "'Infinity'", "'-Infinity'")
    cat.single("real", "real", "float", "0", "'3.4028235e38'", "'1.4e-45'", "'0.1'")
    cat.single("real_special", "real", "float", *specials, about="-0, NaN and the infinities")
    cat.single(
        "double",
        "double precision",
        "float",
        "0",
        "'1.7976931348623157e308'",
        "'5e-324'",
        "'0.1'",
        "'0.30000000000000004'",
    )
    cat.single(
        "double_special", "double precision", "float", *specials, about="-0, NaN and the infinities"
    )
    cat.single("money", "money", "pg:money", "'12.34'", "'-0.01'", "'92233720368547758.07'")


def _texts(cat: Catalog) -> None:
    cat.single("text", "text", "text", *(s(t) for t in NASTY_TEXTS))
    cat.single("varchar_10", "varchar(10)", "text", s(""), s("abc  "), s("0123456789"))
    cat.single("char_5", "char(5)", "text", s("a"), s(""), s("abcde"))
    cat.single(
        "char_84",
        "char(84)",
        "text",
        s(" " * 84),
        s("x"),
        about="pgbench_accounts.filler: 84 spaces",
    )
    cat.single("bytea", "bytea", "bytes", "'\\x'::bytea", "'\\x00ff20'::bytea", ALL_BYTES)
    cat.single("boolean", "boolean", "bool", "true", "false")


def _times(cat: Catalog) -> None:
    """Each date-time type twice: values every target has, then the extremes (BC, years
    past 9999, infinity, 24:00:00) that some cannot hold."""
    cat.single("date", "date", "date", "'2024-02-29'", "'0001-01-01'", "'9999-12-31'")
    cat.single(
        "date_extremes",
        "date",
        "date",
        "'10000-01-01'",
        "'0044-03-15 BC'",
        "'4713-01-01 BC'",
        "'infinity'",
        "'-infinity'",
    )
    cat.single("time", "time", "time", "'00:00:00'", "'23:59:59.999999'", "'12:34:56.5'")
    cat.single("time_24", "time", "time", "'24:00:00'", about="24:00:00, the end of a day")
    cat.single(
        "timetz",
        "timetz",
        "pg:timetz",
        "'00:00:00+00'",
        "'12:00:00+05:30'",
        "'23:59:59.999999-15:59'",
    )
    cat.single(
        "timestamp",
        "timestamp",
        "timestamp",
        "'1970-01-01 00:00:00'",
        "'2024-06-30 12:34:56.789012'",
        "'0001-01-01 00:00:00'",
        "'9999-12-31 23:59:59.999999'",
    )
    cat.single(
        "timestamp_extremes",
        "timestamp",
        "timestamp",
        "'10000-01-01 00:00:00'",
        "'0044-03-15 12:00:00 BC'",
        "'infinity'",
        "'-infinity'",
    )
    cat.single(
        "timestamptz",
        "timestamptz",
        "timestamptz",
        "'1970-01-01 00:00:00+00'",
        "'2024-06-30 12:34:56.789012+05:30'",
        "'1900-01-01 00:00:00+01:23:45'",
    )
    cat.single(
        "timestamptz_extremes",
        "timestamptz",
        "timestamptz",
        "'0044-03-15 12:00:00+00 BC'",
        "'infinity'",
        "'-infinity'",
    )
    cat.single(
        "interval",
        "interval",
        "pg:interval",
        "'1 year 2 months 3 days 04:05:06.789'",
        "'1 mon'",
        "'30 days'",
        "'-00:00:00.000001'",
        "'0'",
    )


def _others(cat: Catalog) -> None:
    cat.single(
        "uuid",
        "uuid",
        "pg:uuid",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "'00000000-0000-0000-0000-000000000000'",
    )
    documents = (
        '{"a": 1.10, "b": 12345678901234567890.123}',
        '[1, "x", true, 1e400]',
        '"  spaced  "',
        "{}",
    )
    # A `null` in a document: the entity reader takes another path for those.
    with_nulls = ("null", "[null, 12345678901234567890.123]")
    for name in ("json", "jsonb"):
        cat.single(name, name, "json", *(s(d) for d in documents))
        cat.single(f"{name}_nulls", name, "json", *(s(d) for d in with_nulls))
    cat.single("int_array", "integer[]", "pg:integer[]", "'{1,2,3}'", "'{}'", "'{NULL,1}'",
               "'{{1,2},{3,4}}'")  # fmt: skip
    cat.single(
        "text_array", "text[]", "pg:text[]", s('{"a b","c,d","","  x  "}'), "'{NULL}'", "'{}'"
    )
    cat.single("bit_5", "bit(5)", "pg:bit(5)", "B'10101'", "B'00000'")
    cat.single("varbit", "varbit", "pg:varbit", "B''", "B'1'", "B'1010101010101'")
    cat.single(
        "inet", "inet", "pg:inet", "'192.168.0.1'", "'10.0.0.0/8'", "'::1'", "'2001:db8::1/64'"
    )
    cat.single("cidr", "cidr", "pg:cidr", "'10.0.0.0/8'", "'2001:db8::/32'")
    mood = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')"
    cat.single("enum", "mood", "text", s("sad"), s("happy"), before=(mood,), about=mood)
    domain = "CREATE DOMAIN label AS text CHECK (VALUE <> 'forbidden')"
    cat.single("domain", "label", "text", s("x"), s(""), s("y  "), before=(domain,), about=domain)
    cat.add(
        "generated",
        Table(
            "t_generated",
            (
                Column("id", "integer", "int", tested=False),
                Column("c_base", "integer", "int", tested=False),
                Column("c_generated", "integer", "int", generated=True),
            ),
            ("id",),
            (
                f"CREATE TABLE {q('t_generated')} (id integer PRIMARY KEY, c_base integer, "
                "c_generated integer GENERATED ALWAYS AS (c_base * 2) STORED)",
            ),
            (("1", "21"), ("2", "NULL")),
        ),
        about="GENERATED ALWAYS AS (c_base * 2) STORED",
    )


def _keys_and_names(cat: Catalog) -> None:
    add_key_tables(cat, "text")
    cat.add(
        "case_names",
        *(
            Table(
                name,
                (Column("id", "integer", "int", tested=False), Column("c_text", "text", "text")),
                ("id",),
                (f"CREATE TABLE {q(name)} (id integer PRIMARY KEY, c_text text)",),
                (("1", s(name)),),
            )
            for name in ("Case", "case")
        ),
        about='"Case" and "case": one table where names ignore case',
    )
    long_name = "t_" + "long_name_" * 6 + "x"  # 63 characters, PostgreSQL's longest
    assert len(long_name) == 63
    cat.add(
        "long_name",
        Table(
            long_name,
            (Column("id", "integer", "int", tested=False), Column("c_text", "text", "text")),
            ("id",),
            (f"CREATE TABLE {q(long_name)} (id integer PRIMARY KEY, c_text text)",),
            (("1", s("x")),),
        ),
        about="a table name of 63 characters",
    )
    cat.add(
        "keyword",
        Table(
            "t_keyword",
            (Column("id", "integer", "int", tested=False), Column("at", "integer", "int")),
            ("id",),
            (f"CREATE TABLE {q('t_keyword')} (id integer PRIMARY KEY, {q('at')} integer)",),
            (("1", "7"), ("2", "NULL")),
        ),
        about="a column named `at` (a DuckDB keyword)",
    )
