"""Every cell of the matrix that fails on today's code, with why.

A line `= <reason>` starts the cells failing for that reason; each line after it names
cells: source, targets, export kinds, `table.column`. Targets and kinds are comma lists,
or `*` for all of them. Each line stands for every cell it names, one by one, so a cell
that is fixed fails the suite until it is no longer named here.
"""

from __future__ import annotations

CellKey = tuple[str, str, str, str]  # source, target, export kind, "table.column"

ALL = {"targets": ("sqlite", "postgresql", "duckdb", "mysql"), "kinds": ("tables", "entities")}

# source    targets                  kinds     table.column
TABLE = """
# Table export: "" and NULL are both an empty field, and an empty field loads as NULL
= empty bytes arrive as NULL (empty hex field)
postgresql  *                        tables    t_bytea.c_bytea
mysql       *                        tables    t_blob.c_blob
mysql       *                        tables    t_varbinary_16.c_varbinary_16
sqlite      *                        tables    t_blob.c_blob
# Floats
= real written as float4 text, read back as another double
postgresql  *                        tables    t_real.c_real
= SQLite stores NaN as NULL and -0.0 as 0.0
postgresql  sqlite                   *         t_real_special.c_real_special
postgresql  sqlite                   *         t_double_special.c_double_special
= MariaDB has no NaN/Infinity: fails mid-load
postgresql  mysql                    *         t_real_special.c_real_special
postgresql  mysql                    *         t_double_special.c_double_special
= -0.0 written as JSON -0, read back as integer 0
postgresql  postgresql,duckdb        entities  t_real_special.c_real_special
postgresql  postgresql,duckdb        entities  t_double_special.c_double_special
= FLOAT read through MariaDB's 6-digit text
mysql       *                        *         t_float.c_float
= MariaDB has no Infinity: fails mid-load
sqlite      mysql                    *         t_real_infinity.c_real_infinity
# Exact numerics
= SQLite NUMERIC keeps a REAL (15-17 digits)
postgresql  sqlite                   *         t_numeric.c_numeric
postgresql  sqlite                   *         t_numeric_huge.c_numeric_huge
postgresql  sqlite                   *         t_numeric_38_10.c_numeric_38_10
postgresql  sqlite                   *         t_numeric_40_0.c_numeric_40_0
mysql       sqlite                   *         t_decimal_65_30.c_decimal_65_30
= numeric NaN bound as a float: SQLite stores NULL
postgresql  sqlite                   entities  t_numeric_special.c_numeric_special
= unconstrained numeric rounded to the target's scale
postgresql  duckdb,mysql             *         t_numeric.c_numeric
= unconstrained numeric beyond the target's range: fails mid-load
postgresql  duckdb,mysql             *         t_numeric_huge.c_numeric_huge
= numeric NaN/Infinity: fails mid-load
postgresql  duckdb,mysql             *         t_numeric_special.c_numeric_special
= DECIMAL wider than 38 created on DuckDB: DDL fails
postgresql  duckdb                   *         t_numeric_40_0.c_numeric_40_0
mysql       duckdb                   *         t_decimal_65_30.c_decimal_65_30
# Integers
= unsigned mapped to the signed type of its size
mysql       *                        *         t_bigint_unsigned.c_bigint_unsigned
mysql       postgresql,duckdb,mysql  *         t_int_unsigned.c_int_unsigned
mysql       postgresql,duckdb,mysql  *         t_smallint_unsigned.c_smallint_unsigned
= SQLite INTEGER (64-bit) mapped to a 32-bit integer
sqlite      postgresql,duckdb,mysql  *         t_integer.c_integer
# Dates and times
= BC/infinity/year 10000 not held by the target: fails mid-load
postgresql  duckdb,mysql             tables    t_date_extremes.c_date_extremes
postgresql  mysql                    tables    t_timestamp_extremes.c_timestamp_extremes
= year 10000 unreadable by the loader; BC and infinity lost
postgresql  *                        entities  t_date_extremes.c_date_extremes
postgresql  *                        entities  t_timestamp_extremes.c_timestamp_extremes
= DuckDB reads '... BC' as AD
postgresql  duckdb                   tables    t_timestamp_extremes.c_timestamp_extremes
= BC/infinity not held by the target: fails mid-load
postgresql  duckdb,mysql             tables    t_timestamptz_extremes.c_timestamptz_extremes
= to_char drops BC; infinity written as ""
postgresql  *                        entities  t_timestamptz_extremes.c_timestamptz_extremes
= psycopg cannot read 24:00:00: the export fails
postgresql  *                        entities  t_time_24.c_time_24
= timetz mapped to time: the offset is dropped
postgresql  postgresql,duckdb        tables    t_timetz.c_timetz
= timetz mapped to time: MariaDB refuses the offset mid-load
postgresql  mysql                    tables    t_timetz.c_timetz
= the entity format drops a time's offset
postgresql  *                        entities  t_timetz.c_timetz
= psycopg reads interval as timedelta: months become 30 days
postgresql  *                        entities  t_interval.c_interval
= TIME (a duration) mapped to time of day: fails mid-load
mysql       postgresql,duckdb        tables    t_time_6_durations.c_time_6_durations
= the loader reads TIME as a time of day: fails
mysql       *                        entities  t_time_6_durations.c_time_6_durations
= zero date not held by the target: fails mid-load
mysql       postgresql,duckdb        tables    t_date_zero.c_date_zero
mysql       postgresql,duckdb        tables    t_datetime_zero.c_datetime_zero
= zero date unreadable by the loader
mysql       *                        entities  t_date_zero.c_date_zero
mysql       *                        entities  t_datetime_zero.c_datetime_zero
# JSON
= loader parses numbers as Decimal, SQLAlchemy's JSON cannot write them
postgresql  *                        entities  t_json.c_json
postgresql  *                        entities  t_jsonb.c_jsonb
= JSON null becomes ""; psycopg rounds numbers; loader cannot write Decimal
postgresql  *                        entities  t_json_nulls.c_json_nulls
postgresql  *                        entities  t_jsonb_nulls.c_jsonb_nulls
= loader parses JSON text with floats; SQL NULL becomes JSON null
sqlite      *                        entities  t_json.c_json
# Other types written as text
= array written as a JSON array, loaded as its JSON text
postgresql  *                        entities  t_int_array.c_int_array
postgresql  *                        entities  t_text_array.c_text_array
= BIT(n) written as hex of its bytes into a text column
mysql       *                        *         t_bit_1.c_bit_1
mysql       *                        *         t_bit_10.c_bit_10
mysql       *                        *         t_bit_64.c_bit_64
= SET mapped to varchar(1): values too long
mysql       postgresql,mysql         *         t_set.c_set
= text created as TEXT (64 KiB) on MariaDB
mysql       mysql                    *         t_longtext.c_longtext
# SQLite storage classes
= numbers and blobs of an untyped column become text
sqlite      *                        *         t_untyped.c_untyped
= a blob in a TEXT column becomes its hex text
sqlite      *                        *         t_blob_in_text.c_blob_in_text
= INTEGER column holding text/real/blob: fails or becomes 0
sqlite      *                        *         t_mixed.c_mixed
= NUMERIC column holding text: fails mid-load
sqlite      postgresql,duckdb,mysql  tables    t_numeric.c_numeric
sqlite      *                        entities  t_numeric.c_numeric
= sqlite3 shell cuts text at NUL
sqlite      *                        tables    t_text_nul.c_text_nul
= PostgreSQL has no NUL in text: fails mid-load
sqlite      postgresql               entities  t_text_nul.c_text_nul
# Keys on MariaDB targets
= key collation folds case and trailing space: rows merge
postgresql  mysql                    *         t_keys_case.k_text
mysql       mysql                    *         t_keys_case.k_text
sqlite      mysql                    *         t_keys_case.k_text
= text key created as VARCHAR(255): fails mid-load
postgresql  mysql                    *         t_keys_long.k_text
sqlite      mysql                    *         t_keys_long.k_text
= four VARCHAR(255) key columns exceed 3072 bytes: DDL fails
postgresql  mysql                    *         t_keys_four.k_part1
postgresql  mysql                    *         t_keys_four.k_part2
postgresql  mysql                    *         t_keys_four.k_part3
postgresql  mysql                    *         t_keys_four.k_part4
sqlite      mysql                    *         t_keys_four.k_part1
sqlite      mysql                    *         t_keys_four.k_part2
sqlite      mysql                    *         t_keys_four.k_part3
sqlite      mysql                    *         t_keys_four.k_part4
# Names
= "Case" and "case" are one table there: DDL fails
postgresql  sqlite,duckdb            tables    Case.c_text
postgresql  sqlite,duckdb            tables    case.c_text
= both tables are entity CASE: "Case" is never exported
postgresql  *                        entities  Case.c_text
= column `at` not quoted for DuckDB: DDL fails
postgresql  duckdb                   *         t_keyword.at
"""


def _parsed(table: str) -> dict[CellKey, str]:
    defects: dict[CellKey, str] = {}
    reason = ""
    for line in table.strip().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("= "):
            reason = line[2:]
            continue
        source, targets, kinds, column = line.split()
        for target in ALL["targets"] if targets == "*" else targets.split(","):
            for kind in ALL["kinds"] if kinds == "*" else kinds.split(","):
                key = (source, target, kind, column)
                if key in defects:
                    raise ValueError(f"KNOWN_DEFECTS names {'/'.join(key)} twice")
                defects[key] = reason
    return defects


KNOWN_DEFECTS: dict[CellKey, str] = _parsed(TABLE)
