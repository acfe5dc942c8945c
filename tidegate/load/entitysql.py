"""Applying an entity run set-based, in SQL, where the target can parse JSON (PostgreSQL).

Record by record (`entityrun`), a load spends about 45 µs of Python on each record. Here
Python only reads each line once (orjson, to check its structure and hash its key), and
the target does the rest with a statement per table:

1. every record line is COPYed into a temporary table, beside its entity, key hash,
   `TIMESTAMP`, `DELETED` and PK fields (the line itself as `jsonb`);
2. records not newer than what the target holds for their entity key, or than the start
   of the newest initial run applied, are dropped from it;
3. the versions are replaced (a run holding one entity key twice keeps the newest record:
   the version table's key finds such a run, and only then are the older ones dropped);
4. per table, the entities' rows are deleted by root key (skipped for an entity whose
   tables were empty when the run began) and the records' rows inserted, each value
   converted in SQL.

The semantics are `entityrun`'s, which stays the reference: a value is converted here only
in the form tidegate's exporter writes it for its type (an integer as a JSON number, a
date-time as `…Z`, text as a JSON string, …). A value in any other form (a hand-made file,
an older writer), a record of unexpected structure, a JSON document column, or any error
of the target sends the whole run to the record-by-record path, inside the same
transaction, which then loads it, or refuses it naming the record and the column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from tidegate.formats.runmanifest import EntityTable, RunManifest
from tidegate.formats.tableschema import ColumnSchema, base_type
from tidegate.load.runfiles import record_lines
from tidegate.load.target import initial_table, version_key, version_table
from tidegate.load.targets import TargetDialect
from tidegate.storage import Location

FIELD, QUOTE = "\x02", "\x01"  # COPY CSV separators no valid JSON line holds unescaped
COPY_OPTIONS = f"(FORMAT csv, DELIMITER E'\\x{ord(FIELD):02x}', QUOTE E'\\x{ord(QUOTE):02x}')"

ZULU = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", re.ASCII)
DATE = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)
TIME = re.compile(r"\d\d:\d\d:\d\d(\.\d{1,6})?", re.ASCII)
HEX = re.compile(r"([0-9a-fA-F]{2})*", re.ASCII)
INTEGER = re.compile(r"-?\d+", re.ASCII)
DECIMAL = re.compile(r"-?\d+(\.\d+)?", re.ASCII)
FLOAT = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?|-?Infinity|NaN", re.ASCII)
ANY = re.compile(".*", re.DOTALL)
FLOAT_WORDS = frozenset({"", "0", "-0", "Infinity", "-Infinity", "NaN"})
PATTERNS = {  # forms of the values written as strings of a given shape
    "timestamp": ZULU,  # (infinity and dates BC are the record path's)
    "timestamptz": ZULU,
    "date": DATE,
    "time": TIME,  # 24:00:00 included
    "binary": HEX,
}
KEY_PATTERNS = {  # the PK fields of numbers and booleans are strings too
    "smallint": INTEGER,
    "integer": INTEGER,
    "bigint": INTEGER,
    "numeric": DECIMAL,
    "float": FLOAT,
    "boolean": re.compile("true|false"),
}
GROUPS = {
    "smallint": "integers",
    "integer": "integers",
    "bigint": "integers",
    "numeric": "numbers",
    "float": "floats",
    "boolean": "booleans",
}
ANALYZED_FROM = 1000  # records applied


class Declined(Exception):
    """The run holds something only the record-by-record path applies exactly, or the
    target refused something in it (which that path then names)."""


@dataclass(frozen=True)
class _Table:
    """What each row of one table of a record must hold: exactly its columns, a non-empty
    key, and each value empty (`""` or null) or in the form the exporter writes for its
    type (docs/formats/entity-export.md), which the target's casts read as the record
    path's converters do. The columns are grouped by form, so that a row is checked in a
    few tight loops (this check is most of the Python a record costs here)."""

    columns: frozenset[str]
    key: tuple[str, ...]
    strings: tuple[str, ...] = ()  # text, and what loads as its text (uuid, interval, …)
    integers: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()  # numeric: any JSON number (jsonb keeps every digit)
    floats: tuple[str, ...] = ()
    booleans: tuple[str, ...] = ()
    patterned: tuple[tuple[str, re.Pattern[str]], ...] = ()  # date-times, dates, hex, …


@dataclass(frozen=True)
class _Shape:
    """What a record line of one entity must hold, checked in Python as it is read."""

    key_patterns: tuple[re.Pattern[str], ...]  # the PK fields', in root key order
    tables: dict[str, _Table]


def suited(dialect: TargetDialect, manifest: RunManifest, zone: tzinfo) -> bool:
    """Whether the run can be applied here: a target that parses JSON in SQL, a zone it
    knows by name, and no JSON document column (the target's JSON text would order an
    object's keys unlike the record path, which keeps the document's own order)."""
    return (
        dialect.applies_runs_in_sql
        and bool(getattr(zone, "key", None))
        and not any(
            base_type(column.type) == "json"
            for tables in manifest.definitions.values()
            for table in tables
            for column in table.schema.columns
        )
    )


def apply_run_sql(
    conn: Connection,
    location: Location,
    folder: str,
    manifest: RunManifest,
    targets: dict[str, sa.Table],
    zone: tzinfo,
    dialect: TargetDialect,
    fresh: set[str],
) -> tuple[int, str]:
    """Apply the run's records; (records applied, the oldest record's `TIMESTAMP` or the
    manifest's `created`, whichever is earlier). `fresh`: entities whose tables held no
    row when the run began (no rows to delete).

    Raises:
        Declined: a record the record-by-record path must apply (the caller rolls back to
            before this call and applies the run that way).
        sqlalchemy.exc.DBAPIError: a value the target refused in SQL (likewise).
    """
    records = _records_table()
    records.drop(conn, checkfirst=True)
    records.create(conn)
    start = _copy_records(conn, records, location, folder, manifest)
    # Statistics of the columns the joins use (not of the lines: a third of a load's time).
    conn.exec_driver_sql(f"ANALYZE {_name(conn, records)} (entity, key_sha1, stamp)")
    held = _drop_not_newer(conn, records, manifest)
    applied = _replace_versions(conn, records, held)
    for name, tables in manifest.definitions.items():
        for table in tables:
            target = targets[table.schema.name]
            if name not in fresh:
                conn.execute(_delete_rows(records, name, table, target, dialect, zone))
            conn.execute(_insert_rows(records, name, table, target, dialect, zone))
    records.drop(conn)
    if applied >= ANALYZED_FROM:  # the next run's joins need the tables' new sizes
        dialect.refresh_statistics(conn, [version_table, *targets.values()])
    return applied, start


def _records_table() -> sa.Table:
    return sa.Table(
        "tidegate_records",
        sa.MetaData(),
        sa.Column("n", sa.BigInteger),
        sa.Column("entity", sa.Text),
        sa.Column("key_sha1", sa.Text),
        sa.Column("stamp", sa.Text),
        sa.Column("deleted", sa.Boolean),
        sa.Column("pk", sa.Text),
        sa.Column("line", JSONB),
        prefixes=["TEMPORARY"],
    )


def _name(conn: Connection, table: sa.Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)


# --- 1. the records, staged -------------------------------------------------------------


def _copy_records(
    conn: Connection, records: sa.Table, location: Location, folder: str, manifest: RunManifest
) -> str:
    """COPY every record of the run into `records`; the oldest `TIMESTAMP` (or the
    manifest's `created`, if earlier)."""
    shapes = {name: _shape(tables) for name, tables in manifest.definitions.items()}
    if not all(n.isprintable() and FIELD not in n and QUOTE not in n for n in shapes):
        raise Declined("an entity name COPY would have to escape")
    raw: Any = conn.connection.driver_connection
    if raw.info.encoding != "utf-8":
        raise Declined(f"client encoding {raw.info.encoding}")
    columns = ", ".join(conn.dialect.identifier_preparer.quote(c.name) for c in records.columns)
    statement = f"COPY {_name(conn, records)} ({columns}) FROM STDIN {COPY_OPTIONS}"
    import psycopg  # only a PostgreSQL target comes here

    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            oldest = _write_records(copy, location, folder, manifest, shapes)
    except psycopg.Error as error:  # the line is no JSON PostgreSQL reads (\u0000, say)
        raise Declined(str(error)) from None
    return oldest


def _write_records(
    copy: Any, location: Location, folder: str, manifest: RunManifest, shapes: dict[str, _Shape]
) -> str:
    oldest = manifest.created
    number = 0
    for file in manifest.files:
        for lines in record_lines(location, folder, file):
            staged = []
            for line in lines:
                number += 1
                stamp, fields = _fields(line, number, shapes)
                oldest = min(oldest, stamp)
                staged.append(fields)
                staged.append(line)
                staged.append(b"\n")
            copy.write(b"".join(staged))
    return oldest


def _shape(tables: Sequence[EntityTable]) -> _Shape:
    root = tables[0]
    kinds = [base_type(root.schema.column(c).type) for c in root.root_key]
    return _Shape(
        tuple(KEY_PATTERNS.get(kind, PATTERNS.get(kind, ANY)) for kind in kinds),
        {t.schema.name: _table(t) for t in tables},
    )


def _table(table: EntityTable) -> _Table:
    groups: dict[str, list[Any]] = {}
    for column in table.schema.columns:
        kind = base_type(column.type)
        if kind in PATTERNS:
            groups.setdefault("patterned", []).append((column.name, PATTERNS[kind]))
        else:
            groups.setdefault(GROUPS.get(kind, "strings"), []).append(column.name)
    return _Table(
        frozenset(c.name for c in table.schema.columns),
        table.schema.primary_key,
        **{group: tuple(names) for group, names in groups.items()},
    )


def _fields(line: bytes, number: int, shapes: dict[str, _Shape]) -> tuple[str, bytes]:
    """(stamp, the COPY fields before the line) of one record line, its structure and
    values checked; anything `entityrun` would read otherwise is Declined (the record path
    names what is wrong, or applies what it can)."""
    try:
        record = orjson.loads(line)
        entity, stamp, data = record["OBJ"], record["TIMESTAMP"], record["DATA"]
        shape = shapes[entity]
        key = [record[f"PK{i}"] for i in range(1, len(shape.key_patterns) + 1)]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise Declined(f"record {number}: not in the exporter's form") from None
    if not (
        type(stamp) is str
        and stamp.isprintable()
        and _key_fits(key, shape)
        and _data_fits(data, shape)
    ):
        raise Declined(f"record {number}: not in the exporter's form")
    pk, sha1 = version_key(key)
    deleted = "t" if record.get("DELETED") is True else "f"
    return stamp, (
        f"{number}{FIELD}{QUOTE}{entity}{QUOTE}{FIELD}{sha1}{FIELD}{QUOTE}{stamp}{QUOTE}"
        f"{FIELD}{deleted}{FIELD}{QUOTE}{pk}{QUOTE}{FIELD}"
    ).encode()


def _key_fits(key: list[Any], shape: _Shape) -> bool:
    """Every PK field a non-empty string in its column's form."""
    for value, pattern in zip(key, shape.key_patterns, strict=True):
        if type(value) is not str or not value or not pattern.fullmatch(value):
            return False
    return True


def _data_fits(data: Any, shape: _Shape) -> bool:
    """DATA holds exactly the entity's tables, each a list of rows that fit."""
    if type(data) is not dict or data.keys() != shape.tables.keys():
        return False
    for name, rows in data.items():
        table = shape.tables[name]
        if type(rows) is not list:
            return False
        for row in rows:
            if type(row) is not dict or row.keys() != table.columns or not _row_fits(row, table):
                return False
    return True


def _row_fits(row: dict[str, Any], table: _Table) -> bool:
    for column in table.key:
        if row[column] == "" or row[column] is None:
            return False
    for column in table.strings:
        if type(row[column]) is not str and row[column] is not None:
            return False
    for column in table.integers:
        value = row[column]
        if type(value) is not int and value != "" and value is not None:
            return False
    for column in table.numbers:
        value = row[column]
        if type(value) not in (int, float) and value != "" and value is not None:
            return False
    for column in table.floats:
        value = row[column]
        if type(value) in (int, float):
            if value == 0:  # -0.0 as a number, which jsonb reads as 0: zeros are strings
                return False
        elif value is not None and (type(value) is not str or value not in FLOAT_WORDS):
            return False
    for column in table.booleans:
        value = row[column]
        if value is not True and value is not False and value != "" and value is not None:
            return False
    for column, pattern in table.patterned:
        value = row[column]
        if value == "" or value is None:
            continue
        if type(value) is not str or not pattern.fullmatch(value):
            return False
    return True


# --- 2 and 3. what is newer, and its versions ---------------------------------------------


def _drop_not_newer(conn: Connection, records: sa.Table, manifest: RunManifest) -> set[str]:
    """Drop the records not newer than the version held of their key, or than their
    entity's floor (the start of the newest initial run applied); the entities of which
    the target holds any version."""
    r, v, i = records.c, version_table.c, initial_table.c
    held = set()
    for name in manifest.definitions:
        floor = conn.execute(sa.select(i.created).where(i.entity == name)).scalar()
        if floor is not None:
            conn.execute(records.delete().where(r.entity == name, r.stamp <= floor))
        if conn.execute(sa.select(v.entity).where(v.entity == name).limit(1)).first():
            held.add(name)
            conn.execute(
                records.delete().where(
                    r.entity == name,
                    v.entity == name,
                    v.key_sha1 == r.key_sha1,
                    v.stamp >= r.stamp,
                )
            )
    return held


def _replace_versions(conn: Connection, records: sa.Table, held: set[str]) -> int:
    """Record the version of every record left; the number of records applied."""
    try:
        with conn.begin_nested():
            return _versions(conn, records, held)
    except sa.exc.IntegrityError:  # the run holds an entity key twice: keep the newest
        newer = records.alias("newer")
        r, n = records.c, newer.c
        conn.execute(
            records.delete().where(
                sa.exists().where(
                    n.entity == r.entity,
                    n.key_sha1 == r.key_sha1,
                    sa.tuple_(n.stamp, n.n) > sa.tuple_(r.stamp, r.n),
                )
            )
        )
        return _versions(conn, records, held)


def _versions(conn: Connection, records: sa.Table, held: set[str]) -> int:
    r, v = records.c, version_table.c
    if held:
        conn.execute(
            version_table.delete().where(
                v.entity.in_(sorted(held)), v.entity == r.entity, v.key_sha1 == r.key_sha1
            )
        )
    columns = ["entity", "key_sha1", "stamp", "pk"]
    conn.execute(version_table.insert().from_select(columns, sa.select(*[r[c] for c in columns])))
    # Counted, not the INSERT's rowcount: psycopg reports -1 for an INSERT … SELECT here.
    return int(conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one())


# --- 4. the rows ----------------------------------------------------------------------------


def _delete_rows(
    records: sa.Table,
    entity: str,
    table: EntityTable,
    target: sa.Table,
    dialect: TargetDialect,
    zone: tzinfo,
) -> sa.Delete:
    """Delete the rows of the records' entities from one of their tables, by root key."""
    r = records.c
    key = sa.cast(r.pk, JSONB)
    matches = [
        target.c[column]
        == _typed(key[index], table.schema.column(column), target.c[column].type, dialect, zone)
        for index, column in enumerate(table.root_key)
    ]
    return target.delete().where(r.entity == entity, *matches)


def _insert_rows(
    records: sa.Table,
    entity: str,
    table: EntityTable,
    target: sa.Table,
    dialect: TargetDialect,
    zone: tzinfo,
) -> sa.Insert:
    """Insert the rows the records (not DELETED) hold of one table, typed in SQL."""
    r = records.c
    elements = sa.func.jsonb_array_elements(r.line["DATA"][table.schema.name], type_=JSONB)
    row = elements.column_valued("row", joins_implicitly=True)
    columns = [c.name for c in table.schema.columns]
    values = [
        _typed(row[c], table.schema.column(c), target.c[c].type, dialect, zone) for c in columns
    ]
    rows = sa.select(*values).select_from(records).where(r.entity == entity, ~r.deleted)
    return target.insert().from_select(columns, rows)


def _typed(
    value: Any, column: ColumnSchema, target_type: Any, dialect: TargetDialect, zone: tzinfo
) -> sa.ColumnElement[Any]:
    """A record's JSON value (`jsonb`, in its exported form: checked as it was read) as the
    target column's value: empty (`""`) as NULL, or the empty string in a NOT NULL text
    column (values.py's rule), else cast."""
    text = sa.func.nullif(value.astext, "")
    if base_type(column.type) == "timestamp":  # written in UTC (`…Z`): into the source's zone
        local = sa.func.timezone(zone.key, sa.cast(text, sa.DateTime(timezone=True)))  # type: ignore[attr-defined]
        return sa.cast(local, target_type)
    return dialect.converted(text, column, target_type)
