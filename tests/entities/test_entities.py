"""Entities on every source: discovery, control records, commands, ongoing capture."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

import tidegate
from tests.conftest import Source
from tests.test_cli import assert_one_error, run
from tidegate import api
from tidegate.api import open_source
from tidegate.capture import claim
from tidegate.capture.ticks import ENTITY_KEYS
from tidegate.errors import ConfigError, EntityRefused


def account_tables() -> list[sa.Table]:
    """An account entity (two children), a person root, a key table, a log table, a
    grandchild, and a root whose key is too wide."""
    md = sa.MetaData()
    text = sa.String(20)
    acct = sa.Table(
        "ci_acct", md, sa.Column("acct_id", text, primary_key=True), sa.Column("name", text)
    )
    char = sa.Table(
        "ci_acct_char",
        md,
        sa.Column("acct_id", text, sa.ForeignKey("ci_acct.acct_id"), primary_key=True),
        sa.Column("char_type", text, primary_key=True),
        sa.Column("val", text),
    )
    per = sa.Table(
        "ci_acct_per",
        md,
        sa.Column("acct_id", text, primary_key=True),
        sa.Column("per_id", text, primary_key=True),
        sa.Column("role", text),
        sa.ForeignKeyConstraint(["acct_id"], ["ci_acct.acct_id"]),
    )
    grandchild = sa.Table(
        "ci_acct_per_note",
        md,
        sa.Column("acct_id", text, primary_key=True),
        sa.Column("per_id", text, primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
        sa.ForeignKeyConstraint(
            ["acct_id", "per_id"], ["ci_acct_per.acct_id", "ci_acct_per.per_id"]
        ),
    )
    person = sa.Table("ci_per", md, sa.Column("per_id", text, primary_key=True))
    key_table = sa.Table("ci_acct_k", md, sa.Column("acct_id", text, primary_key=True))
    log = sa.Table(
        "ci_acct_log",
        md,
        sa.Column("acct_id", text, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.ForeignKeyConstraint(["acct_id"], ["ci_acct.acct_id"]),
    )
    wide = sa.Table(
        "wide",
        md,
        *[sa.Column(c, sa.Integer, primary_key=True, autoincrement=False) for c in "abcdef"],
    )
    return [acct, char, per, grandchild, person, key_table, log, wide]


@pytest.fixture
def accounts(source: Source) -> Source:
    source.create(*account_tables())
    tidegate.init(source.config())
    return source


def listed(source: Source, *overrides: str) -> dict[str, api.EntityStatus]:
    return {s.entity.name: s for s in tidegate.api.entities_list(source.config(*overrides))}


def test_entities_are_discovered_from_key_prefix_foreign_keys(accounts: Source) -> None:
    entities = listed(accounts)
    assert sorted(entities) == ["CI_ACCT", "CI_PER", "WIDE"]
    account = entities["CI_ACCT"].entity
    assert account.tables == ("ci_acct", "ci_acct_char", "ci_acct_per")
    assert account.key_columns("ci_acct_per") == ("acct_id",)
    assert entities["CI_ACCT"].entity.eligible and not entities["WIDE"].entity.eligible
    assert "6 columns" in entities["WIDE"].entity.refusal()
    assert (
        entities["CI_PER"].enabled,
        entities["CI_PER"].initial_status,
        entities["CI_PER"].queue_depth,
    ) == (False, "not started", 0)


def test_defined_entities_replace_discovery_and_their_class_is_enforced(
    accounts: Source,
) -> None:
    overrides = (
        "entities.define.ACCOUNT.root=ci_acct",
        'entities.define.ACCOUNT.children=["ci_acct_per"]',
        "entities.define.PERSON.root=ci_per",
        "entities.define.PERSON.export_class=specialized",
    )
    entities = listed(accounts, *overrides)
    assert sorted(entities) == ["ACCOUNT", "PERSON"]
    assert entities["ACCOUNT"].entity.tables == ("ci_acct", "ci_acct_per")
    with pytest.raises(EntityRefused, match="export class 'specialized'"):
        api.entities_enable(accounts.config(*overrides), ["PERSON"])


def test_enable_disable_reset_and_unknown_names(accounts: Source) -> None:
    config = accounts.config()
    assert api.entities_enable(config, all_eligible=True) == ["CI_ACCT", "CI_PER"]
    entities = listed(accounts)
    assert entities["CI_ACCT"].enabled and not entities["CI_ACCT"].ongoing
    with pytest.raises(ConfigError) as unknown:
        api.entities_enable(config, ["CI_ACC"])
    assert str(unknown.value) == "unknown entity: CI_ACC"
    assert unknown.value.hint == "did you mean CI_ACCT?"
    api.entities_disable(config, ["CI_PER"])
    assert not listed(accounts)["CI_PER"].enabled
    api.entities_reset(config, ["CI_ACCT"])
    assert listed(accounts)["CI_ACCT"].initial_status == "not started"


def queued(source: Source) -> list[tuple[int, list[object]]]:
    db = open_source(source.config())
    found = claim(db, queue=ENTITY_KEYS)
    if found is None:
        return []
    with db.engine.connect() as conn:
        table = "tidegate_entity_queue"
        if db.schema:
            table = f'"{db.schema}".{table}'
        rows = conn.exec_driver_sql(
            f"SELECT entity_id, pk FROM {table} WHERE audit_key = {found.audit_key} "
            "ORDER BY queue_id"
        ).all()
    db.engine.dispose()
    return [(row[0], json.loads(row[1])) for row in rows]


def test_ongoing_capture_queues_the_root_of_every_changed_row(accounts: Source) -> None:
    acct, char, per, *_rest = account_tables()
    api.entities_enable(accounts.config(), ["CI_ACCT"], ongoing=True)
    engine = accounts.engine()
    with engine.begin() as conn:
        conn.execute(
            acct.insert(), [{"acct_id": "A1", "name": "x"}, {"acct_id": "A2", "name": "y"}]
        )
        conn.execute(char.insert(), [{"acct_id": "A1", "char_type": "t", "val": "v"}])
        conn.execute(per.insert(), [{"acct_id": "A2", "per_id": "P1", "role": "r"}])
        conn.execute(per.update().values(acct_id="A1"))  # moves to another root
    # A change whose transaction is still open is not claimed yet.
    writer = engine.connect()
    transaction = writer.begin()
    writer.execute(acct.update().where(acct.c.acct_id == "A2").values(name="z"))
    if accounts.dialect == "sqlite":  # one writer at a time: let the claim go first
        transaction.commit()
        expected_open: list[tuple[int, list[object]]] = []
    else:
        expected_open = [(1, ["A2"])]
    keys = [key for _entity, key in queued(accounts)]
    # Two roots, a child of A1, a child of A2, then the child's move: old root, new root.
    moved = [["A1"], ["A2"], ["A1"], ["A2"], ["A2"], ["A1"]]
    assert keys == ([*moved, ["A2"]] if accounts.dialect == "sqlite" else moved)
    if accounts.dialect != "sqlite":
        transaction.commit()
    writer.close()
    if expected_open:
        assert queued(accounts) == expected_open
    status = listed(accounts)["CI_ACCT"]
    assert status.ongoing and status.queue_depth == len(keys) + len(expected_open)

    api.entities_disable(accounts.config(), ["CI_ACCT"], ongoing_only=True)
    with engine.begin() as conn:
        conn.execute(acct.insert(), [{"acct_id": "A3", "name": "w"}])
    assert queued(accounts) == []
    assert listed(accounts)["CI_ACCT"].enabled


def test_entity_commands_through_the_cli(accounts: Source) -> None:
    settings = ["--set", f"source.url={accounts.url}"]
    if accounts.schema:
        settings += ["--set", f"source.schema={accounts.schema}"]
    code, out, err = run(accounts.tmp_path, *settings, "entities", "enable", "CI_ACCT", "--ongoing")
    assert code == 0, err
    assert "enabled with ongoing capture: CI_ACCT" in out
    code, out, _err = run(accounts.tmp_path, *settings, "entities", "list", "--json")
    listing = {e["name"]: e for e in json.loads(out)}
    assert listing["CI_ACCT"]["ongoing"] and listing["WIDE"]["eligible"] is False
    code, _out, err = run(accounts.tmp_path, *settings, "entities", "enable", "WIDE")
    assert code == 1
    assert_one_error(
        err,
        r"Error: entity WIDE: its root key has 6 columns; at most 5 can be "
        r"exported",
    )
    code, _out, err = run(accounts.tmp_path, *settings, "entities", "disable", "NOPE")
    assert code == 1
    assert_one_error(err, r"Error: unknown entity: NOPE")
    code, out, _err = run(accounts.tmp_path, *settings, "entities", "reset", "CI_ACCT")
    assert code == 0 and "initial export reset: CI_ACCT" in out


def test_disabling_an_entity_does_not_wait_for_another_entitys_open_writer(
    server_source: Source,
) -> None:
    """A writer's transaction holds a queued key of CI_PER, still uncommitted; disabling
    CI_ACCT (whose tables it did not touch) removes CI_ACCT's queued keys without waiting
    for it. (On MariaDB the removal once scanned the whole queue with locking reads and
    waited for the writer until the lock wait timed out.)"""
    import threading

    source = server_source
    source.create(*account_tables())
    config = source.config()
    tidegate.init(config)
    api.entities_enable(config, ["CI_ACCT", "CI_PER"], ongoing=True)
    acct, person = account_tables()[0], account_tables()[4]
    engine = source.engine()
    with engine.begin() as conn:
        conn.execute(acct.insert(), [{"acct_id": "A1"}])  # a committed key of CI_ACCT
    writer = engine.connect()
    transaction = writer.begin()
    writer.execute(person.insert(), [{"per_id": "P1"}])  # an uncommitted key of CI_PER
    failures: list[BaseException] = []

    def disable() -> None:
        try:
            api.entities_disable(config, ["CI_ACCT"], ongoing_only=True)
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=disable)
    thread.start()
    thread.join(10)
    waited = thread.is_alive()
    transaction.commit()
    writer.close()
    thread.join()
    assert not waited, "disable waited for a writer of another entity"
    assert not failures, failures
    depth = {name: status.queue_depth for name, status in listed(source).items()}
    assert (depth["CI_ACCT"], depth["CI_PER"]) == (0, 1)
