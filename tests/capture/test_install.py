"""`init` and `uninstall` on every source dialect: what capture records, and what it refuses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tidegate import capture
from tidegate.api import open_source
from tidegate.errors import CaptureError, NotInitialized


def customer_table(name: str = "customer") -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100)),
    )


def claimed(source: Source) -> list[tuple[str, str, tuple[object, ...]]]:
    """Claim everything pending and return (table, op, key) in capture order."""
    config = source.config()
    claim = tidegate.claim_changes(config)
    if claim is None:
        return []
    return [(c.table, c.op, c.key) for c in tidegate.read_claim(config, claim.audit_key)]


def test_insert_update_delete_and_key_change_are_captured(source: Source) -> None:
    table = customer_table()
    source.create(table)
    report = tidegate.init(source.config())
    assert report.installed == ("customer",)
    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        conn.execute(table.update().where(table.c.id == 1).values(name="a2"))
        conn.execute(table.update().where(table.c.id == 2).values(id=3))
        conn.execute(table.delete().where(table.c.id == 1))
    assert claimed(source) == [
        ("customer", "I", (1,)),
        ("customer", "I", (2,)),
        ("customer", "U", (1,)),
        ("customer", "D", (2,)),
        ("customer", "U", (3,)),
        ("customer", "D", (1,)),
    ]


def test_init_twice_captures_each_change_once(source: Source) -> None:
    table = customer_table()
    source.create(table)
    tidegate.init(source.config())
    second = tidegate.init(source.config())
    assert second.installed == () and second.refreshed == ("customer",)
    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "name": "a"}])
    assert claimed(source) == [("customer", "I", (1,))]


def test_table_added_to_include_later_is_picked_up_and_removed_one_dropped(
    source: Source,
) -> None:
    first, second = customer_table("alpha"), customer_table("beta")
    source.create(first, second)
    report = tidegate.init(source.config('tables.include=["alpha"]'))
    assert report.installed == ("alpha",)
    report = tidegate.init(source.config())
    assert report.installed == ("beta",) and report.refreshed == ("alpha",)
    report = tidegate.init(source.config('tables.exclude=["alpha"]'))
    assert report.removed == ("alpha",)
    with source.engine().begin() as conn:
        conn.execute(first.insert(), [{"id": 1, "name": "a"}])
        conn.execute(second.insert(), [{"id": 2, "name": "b"}])
    assert claimed(source) == [("beta", "I", (2,))]


def test_a_table_without_primary_key_is_named_and_keyed_once_its_key_is_given(
    source: Source,
) -> None:
    keyed = customer_table()
    keyless = sa.Table(
        "audit_trail", sa.MetaData(), sa.Column("line", sa.Integer), sa.Column("text", sa.Text)
    )
    source.create(keyed, keyless)
    report = tidegate.init(source.config())
    assert (report.installed, report.keyless) == (("audit_trail", "customer"), ("audit_trail",))
    config = source.config('tables.keys.audit_trail=["line"]')
    report = tidegate.init(config)
    assert (report.refreshed, report.keyless) == (("audit_trail", "customer"), ())
    with source.engine().begin() as conn:
        conn.execute(keyless.insert(), [{"line": 7, "text": "a"}])
    assert claimed(source) == [("audit_trail", "I", (7,))]


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        (
            'tables.keys.customer=["name"]',
            r"keys\.customer: table 'customer' has a primary key \(id\)",
        ),
        (
            'tables.keys.audit_trail=["nope"]',
            r"keys\.audit_trail: table 'audit_trail' has no column 'nope'",
        ),
        ('tables.keys.elsewhere=["id"]', r"keys\.elsewhere: table 'elsewhere' is not exported"),
    ],
)
def test_a_wrong_key_entry_is_refused_in_one_line(source: Source, keys: str, says: str) -> None:
    keyless = sa.Table("audit_trail", sa.MetaData(), sa.Column("line", sa.Integer))
    source.create(customer_table(), keyless)
    with pytest.raises(CaptureError, match=says):
        tidegate.init(source.config(keys))
    with pytest.raises(NotInitialized):
        tidegate.list_runs(source.config())


def test_a_column_name_export_files_cannot_carry_is_refused_at_init(source: Source) -> None:
    """Regression (found by the name fuzz test): a column named with a control character
    was captured and exported, and then the loader refused the export's schema."""
    odd = sa.Table(
        "odd",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a\x1fb", sa.Text),
    )
    source.create(customer_table(), odd)
    with pytest.raises(CaptureError) as refused:
        tidegate.init(source.config())
    assert str(refused.value).startswith("table 'odd': column 'a\\x1fb' has a control character")
    assert "exclude" in refused.value.hint
    assert tidegate.init(source.config('tables.exclude=["odd"]')).installed == ("customer",)


NASTY_TABLE = 'we"ird; DROP TABLE victim;--'
NASTY_COLUMNS = ["select", "a b", "ünï €", "50% :off", "it's"]


def test_nasty_names_are_quoted_and_never_run_as_sql(source: Source) -> None:
    victim = customer_table("victim")
    nasty = sa.Table(
        NASTY_TABLE,
        sa.MetaData(),
        sa.Column(NASTY_COLUMNS[0], sa.String(20), primary_key=True),
        sa.Column(NASTY_COLUMNS[1], sa.Integer, primary_key=True, autoincrement=False),
        *[sa.Column(name, sa.String(20)) for name in NASTY_COLUMNS[2:]],
    )
    reserved = sa.Table(
        "order",
        sa.MetaData(),
        sa.Column("group", sa.Integer, primary_key=True, autoincrement=False),
    )
    source.create(victim, nasty, reserved)
    tidegate.init(source.config())
    with source.engine().begin() as conn:
        conn.execute(nasty.insert(), [{"select": "x'); --", "a b": 1, "ünï €": "v"}])
        conn.execute(reserved.insert(), [{"group": 5}])
        conn.execute(nasty.update().values({"it's": "changed"}))
    assert claimed(source) == [
        (NASTY_TABLE, "I", ("x'); --", 1)),
        ("order", "I", (5,)),
        (NASTY_TABLE, "U", ("x'); --", 1)),
    ]
    assert "victim" in sa.inspect(source.engine()).get_table_names(schema=source.schema or None)


def test_common_column_types_and_typed_composite_keys(source: Source) -> None:
    table = sa.Table(
        "typed",
        sa.MetaData(),
        sa.Column("code", sa.String(30), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("amount", sa.Numeric(38, 10), primary_key=True),
        sa.Column("big", sa.BigInteger),
        sa.Column("ratio", sa.Float),
        sa.Column("flag", sa.Boolean),
        sa.Column("stamp", sa.DateTime),
        sa.Column("stamp_tz", sa.DateTime(timezone=True)),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("body", sa.Text),
        sa.Column("short", sa.SmallInteger),
        sa.Column("uni", sa.Unicode(50)),
    )
    source.create(table)
    tidegate.init(source.config())
    amount = Decimal("1234567890123456789012345678.0123456789")
    with source.engine().begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "code": "Ä-1",
                    "day": dt.date(2024, 2, 29),
                    "amount": amount,
                    "big": 2**62,
                    "ratio": 0.1,
                    "flag": True,
                    "stamp": dt.datetime(2024, 1, 1, 12, 0, 0, 123456),
                    "stamp_tz": dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC),
                    "blob": b"\x00\xff",
                    "body": "x" * 5000,
                    "short": 7,
                    "uni": "日本",
                }
            ],
        )
    [(name, op, key)] = claimed(source)
    assert (name, op) == ("typed", "I")
    assert key[0] == "Ä-1"
    assert str(key[1]).startswith("2024-02-29")
    if source.dialect == "sqlite":
        # SQLite itself keeps a NUMERIC this long as an 8-byte REAL.
        assert float(key[2]) == pytest.approx(float(amount))
    else:
        assert Decimal(str(key[2])) == amount


def test_uninstall_removes_every_trace(source: Source) -> None:
    table = customer_table()
    source.create(table)
    tidegate.init(source.config())
    removed = tidegate.uninstall(source.config())
    assert removed == ["customer"]
    db = open_source(source.config())
    leftover = [
        n
        for n in sa.inspect(db.engine).get_table_names(schema=db.schema)
        if n.startswith("tidegate")
    ]
    assert leftover == []
    with db.engine.connect() as conn:
        assert capture.capture_for(db).leftover_triggers(conn) == []
        if db.dialect.name == "postgresql":
            functions = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_proc p JOIN pg_namespace n "
                    "ON n.oid = p.pronamespace WHERE n.nspname = :s"
                ),
                {"s": db.schema},
            ).scalar()
            assert functions == 0
    # The application keeps writing as before.
    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "name": "a"}])
