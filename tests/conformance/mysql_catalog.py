"""Every MariaDB column type, with its edge values (see catalog.py)."""

from __future__ import annotations

from tests.conformance.catalog import Catalog, Dialect, add_key_tables, keyed_table

MARIADB = Dialect("mysql", "`", backslash_escapes=True)
s = MARIADB.string
q = MARIADB.quote

TEXTS = ("", " ", "a  ", "ünïcødé 日本 🎉", "line1\nline2\r\nend", 'say "hi", it\'s', "\\N")
ALL_BYTES = "X'" + bytes(range(256)).hex() + "'"

# (name, type, smallest, largest) of every integer type, signed and unsigned.
INTEGERS = (
    ("tinyint", "tinyint", -(2**7), 2**7 - 1),
    ("smallint", "smallint", -(2**15), 2**15 - 1),
    ("mediumint", "mediumint", -(2**23), 2**23 - 1),
    ("int", "int", -(2**31), 2**31 - 1),
    ("bigint", "bigint", -(2**63), 2**63 - 1),
    ("tinyint_unsigned", "tinyint unsigned", 0, 2**8 - 1),
    ("smallint_unsigned", "smallint unsigned", 0, 2**16 - 1),
    ("mediumint_unsigned", "mediumint unsigned", 0, 2**24 - 1),
    ("int_unsigned", "int unsigned", 0, 2**32 - 1),
    ("bigint_unsigned", "bigint unsigned", 0, 2**64 - 1),
)


def catalog() -> Catalog:
    cat = Catalog(MARIADB)
    for name, sql_type, low, high in INTEGERS:
        cat.single(name, sql_type, "int", str(low), str(high), "0")
    cat.single("tinyint_1", "tinyint(1)", "int", "0", "1", "-128", "127", about="boolean-ish")
    _numbers(cat)
    _texts(cat)
    _times(cat)
    cat.single("enum", "enum('a','b','ü')", "text", s("a"), s("ü"), about="ENUM('a','b','ü')")
    cat.single("set", "set('x','y','z')", "text", s(""), s("x,z"), s("x,y,z"))
    # MariaDB's JSON is a LONGTEXT that must hold JSON: tidegate exports its text, which
    # entity records carry as a string (the document `null` stays the text "null").
    cat.single(
        "json",
        "json",
        "json_text",
        s('{"a": 1.10, "b": 12345678901234567890.123}'),
        s('[1, "x", null, true]'),
        s('"  spaced  "'),
        s("null"),
    )
    _keys(cat)
    return cat


def _numbers(cat: Catalog) -> None:
    cat.single(
        "decimal_65_30",
        "decimal(65,30)",
        "decimal",
        "9" * 35 + "." + "9" * 30,
        "-" + "9" * 35 + "." + "9" * 30,
        "0." + "0" * 29 + "1",
        "1.10",
        "0",
    )
    cat.single("decimal_10_2", "decimal(10,2)", "decimal", "99999999.99", "-0.01", "1.10")
    cat.single(
        "float",
        "float",
        "float",
        "0",
        "0.1",
        "-1.5",
        "3.4028234663852886e38",
        "1.401298464324817e-45",
    )
    cat.single(
        "double",
        "double",
        "float",
        "0",
        "0.1",
        "0.30000000000000004",
        "1.7976931348623157e308",
        "5e-324",
        "-2.5e-300",
    )
    cat.single("bit_1", "bit(1)", "bits:1", "b'0'", "b'1'")
    cat.single("bit_10", "bit(10)", "bits:10", "b'1010000001'", "b'0'")
    cat.single("bit_64", "bit(64)", "bits:64", "b'" + "1" * 64 + "'")


def _texts(cat: Catalog) -> None:
    cat.single("char_10", "char(10)", "text", s(""), s("a  "), s("0123456789"))
    cat.single("varchar_20", "varchar(20)", "text", *(s(t) for t in TEXTS))
    cat.single("text", "text", "text", *(s(t) for t in TEXTS))
    cat.single("longtext", "longtext", "text", s("x" * 70000))
    cat.single("blob", "blob", "bytes", "X''", "X'00ff20'", ALL_BYTES)
    cat.single("varbinary_16", "varbinary(16)", "bytes", "X''", "X'00'", "X'00ff2000'")
    cat.single("binary_4", "binary(4)", "bytes", "X'61'", "X'00000000'", about="padded with 0x00")


def _times(cat: Catalog) -> None:
    cat.single(
        "datetime_6",
        "datetime(6)",
        "timestamp",
        "'1000-01-01 00:00:00.000000'",
        "'9999-12-31 23:59:59.999999'",
        "'2024-02-29 12:34:56.789012'",
    )
    cat.single("datetime", "datetime", "timestamp", "'2024-01-01 10:00:00'")
    cat.single(
        "datetime_zero",
        "datetime",
        "timestamp",
        "'0000-00-00 00:00:00'",
        about="the zero date, which sql_mode lets in without NO_ZERO_DATE",
    )
    cat.single(
        "timestamp_6",
        "timestamp(6) NULL",
        "timestamptz",
        "'1970-01-01 00:00:01.000000'",
        "'2038-01-19 03:14:07.999999'",
        "'2024-06-30 12:34:56.789012'",
        about="written with the session's time zone at +00:00",
    )
    cat.single("time_6", "time(6)", "duration", "'00:00:00'", "'23:59:59.999999'", "'12:34:56.5'")
    cat.single(
        "time_6_durations",
        "time(6)",
        "duration",
        "'-838:59:59.000000'",
        "'838:59:59.000000'",
        "'100:00:00'",
        "'-00:00:00.000001'",
        about="TIME is a duration: negative, or past 24 hours",
    )
    cat.single("date", "date", "date", "'1000-01-01'", "'9999-12-31'", "'2024-02-29'")
    cat.single("date_zero", "date", "date", "'0000-00-00'", about="the zero date")
    cat.single("year", "year", "int", "1901", "2155", "0")


def _keys(cat: Catalog) -> None:
    # A binary key without padding, so that 'a' and 'a ' are two keys in the source too.
    add_key_tables(
        cat,
        "varchar(10) COLLATE utf8mb4_nopad_bin",
        "varchar(300)",
        "varchar(100)",
    )
    rows = ((s("A"), "1"), (s("b "), "2"), (s("ß"), "3"))
    cat.add(
        "keys_ci",
        keyed_table(MARIADB, "t_keys_ci", {"k_text": "varchar(10)"}, rows),
        about="a key with the default collation (case-insensitive, PAD SPACE)",
    )
