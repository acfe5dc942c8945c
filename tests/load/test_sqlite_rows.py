"""The SQLite target's own row path: a table's INTEGER key as its rowid, values converted
by one CASE each; a snapshot into an empty table, an upsert, and a snapshot into a table
emptied in the same transaction, each compared with the source."""

from __future__ import annotations

import datetime as dt
import math
import re
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.load.conftest import TargetDb
from tests.load.helpers import assert_target_equals_source
from tests.load.test_refusals import assert_one_error, cli, rewrite
from tests.tables.helpers import Micro
from tidegate import api
from tidegate.errors import LoadError
from tidegate.formats.tableschema import ColumnSchema, TableSchema
from tidegate.load.targets import sqlite as sqlite_dialect
from tidegate.load.targets.sqlite import ROWS_PER_INSERT


def readings() -> sa.Table:
    """A table with a single integer key and no binary column: the path the driver loops
    over the CSV reader itself."""
    return sa.Table(
        "reading",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("label", sa.String(40)),
        sa.Column("code", sa.String(10), nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("at", Micro),
        sa.Column("day", sa.Date),
    )


def reading(key: int) -> dict[str, Any]:
    return {
        "id": key,
        "label": [None, "plain", "a,b", 'say "hi"', "line1\nline2", "Zoë"][key % 6],
        "code": ["", "x", "NULL"][key % 3],  # NOT NULL: the empty string stays one
        "value": [None, 0.1, -1e-300, 1e20, 3.141592653589793, 2.0, 0.0][key % 7],
        "amount": [None, Decimal("-12.34"), Decimal("9999999999.99")][key % 3],
        "at": [None, dt.datetime(2026, 1, 2, 3, 4, 5, 123456)][key % 2],
        "day": [None, dt.date(2024, 2, 29)][key % 2],
    }


def sqlite_target(source: Source) -> TargetDb:
    return TargetDb("sqlite", f"sqlite:///{source.tmp_path / 'target.db'}")


def rowid_key(target: TargetDb, table: str) -> bool:
    """Is the table's key its rowid (no index kept beside the table for the key)?"""
    with target.engine().connect() as conn:
        indexes = conn.exec_driver_sql(f"SELECT origin FROM pragma_index_list('{table}')")
        return "pk" not in set(indexes.scalars())


def test_snapshot_upsert_and_snapshot_into_an_emptied_table(source: Source) -> None:
    """Every source into SQLite: a snapshot into an empty table (plain INSERT), changes
    (upsert by key, deletes), then a snapshot from the beginning into the table holding
    rows (emptied, then plain INSERT, in one transaction): the target equals the source
    after each."""
    table = readings()
    source.create(table)
    target = sqlite_target(source)
    config = source.config()
    tidegate.init(config)
    engine = source.engine()
    with engine.begin() as conn:
        conn.execute(table.insert(), [reading(k) for k in range(1, 131)])
    tidegate.export_tables(config)
    api.load(config)
    assert_target_equals_source(source, target, "reading")
    assert rowid_key(target, "reading")

    # 60 rows updated and 60 new ones: upserts in whole batches and a shorter last one.
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id <= 60).values(label="changed", value=None))
        conn.execute(table.delete().where(table.c.id.between(70, 79)))
        conn.execute(table.insert(), [reading(k) for k in range(131, 191)])
    tidegate.export_tables(config)
    result = api.load(config)
    assert len(result.tables) == 1
    assert_target_equals_source(source, target, "reading")

    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.id > 150))
        conn.execute(table.update().where(table.c.id == 1).values(code="", amount=None))
    # Deleted rows are not in a snapshot: only emptying the table removes them.
    tidegate.export_tables(config, restart_from_beginning=True)
    assert len(api.load(config).tables) == 1
    assert_target_equals_source(source, target, "reading")
    target.dispose()


@pytest.mark.parametrize(
    "count", [1, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, 2 * ROWS_PER_INSERT + 1]
)
def test_every_record_is_loaded_whatever_the_batches(sqlite_source: Source, count: int) -> None:
    """Records go to SQLite in INSERTs of ROWS_PER_INSERT, the last one shorter: none is
    lost or doubled at the edges."""
    table = readings()
    sqlite_source.create(table)
    config = sqlite_source.config()
    tidegate.init(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(table.insert(), [reading(k) for k in range(1, count + 1)])
    tidegate.export_tables(config)
    assert api.load(config).rows == count
    target = sqlite_target(sqlite_source)
    assert_target_equals_source(sqlite_source, target, "reading")
    target.dispose()


def test_an_older_target_table_keyed_by_bigint_still_loads(sqlite_source: Source) -> None:
    """A target table created before keys became rowids (BIGINT, an index beside the
    table) is loaded as before, NULL-safe."""
    table = readings()
    sqlite_source.create(table)
    target = sqlite_target(sqlite_source)
    with target.engine().begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE reading (id BIGINT NOT NULL, label TEXT, code TEXT NOT NULL, "
            "value DOUBLE, amount NUMERIC(12, 2), at DATETIME, day DATE, PRIMARY KEY (id))"
        )
    assert not rowid_key(target, "reading")
    config = sqlite_source.config()
    tidegate.init(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(table.insert(), [reading(k) for k in range(1, 31)])
    tidegate.export_tables(config)
    api.load(config)
    with sqlite_source.engine().begin() as conn:
        conn.execute(table.update().where(table.c.id <= 5).values(label=None, code=""))
        conn.execute(table.delete().where(table.c.id > 25))
    tidegate.export_tables(config)
    api.load(config)
    assert_target_equals_source(sqlite_source, target, "reading")
    target.dispose()


def exported_readings(source: Source, count: int = 10) -> Path:
    """A snapshot of `count` readings whose texts need no quoting (see `with_field`)."""
    table = readings()
    source.create(table)
    config = source.config()
    tidegate.init(config)
    with source.engine().begin() as conn:
        rows = [reading(k) | {"label": f"r{k}", "code": "x"} for k in range(1, count + 1)]
        conn.execute(table.insert(), rows)
    tidegate.export_tables(config)
    return source.tmp_path / "exports"


def with_field(csv: bytes, record: int, column: int, value: bytes) -> bytes:
    """The CSV with one field of one record (1 = the first after the header) replaced."""
    lines = csv.split(b"\n")
    fields = lines[record].split(b",")
    fields[column] = value
    lines[record] = b",".join(fields)
    return b"\n".join(lines)


def test_an_empty_or_non_integer_key_is_refused(sqlite_source: Source, tmp_path: Path) -> None:
    """SQLite would give a NULL rowid a new value rather than refuse it: the key's field
    is bound as it is, so an empty key (or text that is no integer) is refused, naming
    the member, and the target is left as it was."""
    exports = exported_readings(sqlite_source)
    for bad in (b"", b"abc", b"1.5"):

        def bad_key(members: dict[str, bytes], bad: bytes = bad) -> None:
            members["reading.csv"] = with_field(members["reading.csv"], 1, 0, bad)

        folder = rewrite(exports, bad_key)
        code, _out, err = cli(tmp_path, "load", str(exports))
        assert code == 1, err
        assert_one_error(err, rf"Error: {folder.name}/.*reading\.csv: .*datatype mismatch.*")
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM reading").scalar() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM tidegate_applied").scalar() == 0
        engine.dispose()


def test_float_texts_load_as_the_values_they_name(sqlite_source: Source, tmp_path: Path) -> None:
    """A float column's texts as other sources write them: Infinity and -Infinity become
    SQLite's infinities, the empty field NULL, numbers the same double."""
    exports = exported_readings(sqlite_source)
    texts = [b"Infinity", b"-Infinity", b"1.5", b"", b"-1e-300", b"1e20", b"0.30000000000000004"]

    def specials(members: dict[str, bytes]) -> None:
        for record, text in enumerate(texts, start=1):
            members["reading.csv"] = with_field(members["reading.csv"], record, 3, text)

    rewrite(exports, specials)
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 0, err
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    with engine.connect() as conn:
        got = dict(conn.exec_driver_sql("SELECT id, value FROM reading WHERE id <= 7").all())
    engine.dispose()
    assert got[1] == math.inf and got[2] == -math.inf
    assert got[3] == 1.5 and got[4] is None
    assert (got[5], got[6], got[7]) == (-1e-300, 1e20, 0.30000000000000004)


@pytest.mark.parametrize(("text", "says"), [(b"NaN", "NaN"), (b"-0.0", "-0.0")])
def test_a_float_sqlite_cannot_hold_is_refused(
    sqlite_source: Source, tmp_path: Path, text: bytes, says: str
) -> None:
    """NaN (SQLite stores NULL) and -0 (stored as 0): one line naming the column, nothing
    loaded."""
    exports = exported_readings(sqlite_source)
    folder = rewrite(
        exports,
        lambda members: members.update(
            {"reading.csv": with_field(members["reading.csv"], 2, 3, text)}
        ),
    )
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1
    assert_one_error(
        err,
        rf"Error: {folder.name}/.*reading\.csv: table 'reading', column 'value' \(.*\): "
        rf"SQLite's REAL cannot hold {re.escape(repr(says))}",
    )


def test_a_record_of_another_width_is_named(sqlite_source: Source, tmp_path: Path) -> None:
    """A record with a field too many, past the first batch: refused with its number."""
    exports = exported_readings(sqlite_source, 79)

    def extra_field(members: dict[str, bytes]) -> None:
        members["reading.csv"] = with_field(members["reading.csv"], 73, 1, b"r73,extra")

    folder = rewrite(exports, extra_field)
    code, _out, err = cli(tmp_path, "load", str(exports))
    assert code == 1, err
    assert_one_error(err, rf"Error: {folder.name}/.*reading\.csv: record 73 has 8 fields, not 7")


def test_a_refused_value_is_named_whatever_another_thread_loads() -> None:
    """`tidegate_refuse` leaves what it refused for the statement's thread to name; a load
    in another thread, starting between the refusal and its naming, must not erase it (the
    conformance suite loads in threads, and once got "user-defined function raised
    exception" instead of the line)."""
    schema = TableSchema("reading", (ColumnSchema("value", "float", "REAL", True),), ())
    refused, cleared = threading.Event(), threading.Event()

    def refuse_then_wait(column: str, value: str) -> None:
        try:
            sqlite_dialect._refuse(column, value)
        finally:
            refused.set()
            cleared.wait(10)

    def another_load() -> None:
        refused.wait(10)
        with sqlite_dialect._refused("other", schema):
            pass  # a statement that refused nothing
        cleared.set()

    other = threading.Thread(target=another_load)
    other.start()
    conn = sqlite3.connect(":memory:")
    conn.create_function("refuse_then_wait", 2, refuse_then_wait)
    said = r"table 'reading', column 'value' .*cannot hold 'NaN'"
    with pytest.raises(LoadError, match=said), sqlite_dialect._refused("here", schema):
        conn.execute("SELECT refuse_then_wait('value', 'NaN')")
    other.join(10)
