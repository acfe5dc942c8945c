"""`tidegate demo`: a sample SQLite source exported both ways, loaded, and proved equal.

Built only on the public API, as a user's own script would be: capture and claims (every
committed change claimed once, a rolled-back one not), table exports, entity exports
(initial, then ongoing), a burst of activity with a transaction left open across an
export, then `verify`, `load` into a SQLite target, and a table-by-table comparison of
the target with the source.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tidegate import api
from tidegate.config import Config, load_config

# The sample: customers, their orders (a composite key, and a table named with a reserved
# word), and order lines (a three-column key and a name with a space in it).
_DIGITS = re.compile(r"-?\d+(\.\d+)?")
SCHEMA = """
CREATE TABLE customer (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    balance NUMERIC(18, 2),
    created_at TEXT
);
CREATE TABLE "order" (
    customer_id INTEGER NOT NULL REFERENCES customer(id),
    order_no INTEGER NOT NULL,
    status TEXT,
    note TEXT,
    PRIMARY KEY (customer_id, order_no)
);
CREATE TABLE "order line" (
    customer_id INTEGER NOT NULL,
    order_no INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    sku TEXT,
    quantity INTEGER,
    PRIMARY KEY (customer_id, order_no, line_no)
);
"""

CONFIG = """\
# tidegate configuration written by `tidegate demo`
[source]
url = "sqlite:///{source}"

[output]
location = "{exports}"

[target]
url = "sqlite:///{target}"
"""

Key = tuple[object, ...]
ChangeKey = tuple[str, str, Key]  # (table, op, key)


@dataclass
class DemoReport:
    """What the demo did and whether the claimed changes equal the changes made."""

    directory: Path
    per_table: dict[str, tuple[int, int]] = field(default_factory=dict)
    audit_keys: list[int] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    ok: bool = False
    # table -> (rows in the source, rows in the target, equal)
    compared: dict[str, tuple[int, int, bool]] = field(default_factory=dict)

    @property
    def target_equal(self) -> bool:
        return bool(self.compared) and all(equal for _s, _t, equal in self.compared.values())


class SampleApp:
    """The application that writes to the demo source, keeping a log of what it changed."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.made: list[ChangeKey] = []

    def transaction(
        self,
        statements: list[tuple[str, tuple[object, ...], list[ChangeKey]]],
        *,
        commit: bool = True,
    ) -> None:
        """Run statements in one transaction; log their changes only if it commits."""
        self.conn.execute("BEGIN")
        for sql, parameters, _changes in statements:
            self.conn.execute(sql, parameters)
        if commit:
            self.conn.execute("COMMIT")
            for _sql, _parameters, changes in statements:
                self.made.extend(changes)
        else:
            self.conn.execute("ROLLBACK")


def run_demo(directory: Path, say: Callable[[str], None]) -> DemoReport:
    """Create the sample source in ``directory`` (replacing an earlier demo) and run it."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    source = directory / "source.db"
    config_path = directory / "tidegate.toml"
    config_path.write_text(
        CONFIG.format(
            source=source.resolve(),
            exports=(directory / "exports").resolve(),
            target=(directory / "target.db").resolve(),
        )
    )
    app = SampleApp(source)
    app.conn.executescript(SCHEMA)
    app.conn.executemany(
        "INSERT INTO customer VALUES (?, ?, ?, ?, ?)",
        [
            (1, "Ada Lovelace", "ada@example.com", "1815.12", "2026-11-01 09:00:00"),
            (2, 'Grace "Amazing" Hopper', None, "0.00", "2026-11-02 10:30:00"),
        ],
    )
    say(f"created a sample source with 3 tables in {source}")

    config = load_config(config_path)
    report = api.init(config)
    say(f"init: capture installed on {', '.join(report.installed)}")
    folders = [result.name for result in api.export_tables(config)]
    say(f"table export: first folder {folders[0]} is a snapshot of every table")

    made_round_one(app)
    say(f"the application committed {len(app.made)} changes (and rolled back one transaction)")
    claims = [api.claim_changes(config)]
    made_round_two(app)
    say("the application committed more changes, including one that moves an order to a new key")
    claims.append(api.claim_changes(config))

    claimed: list[ChangeKey] = []
    result = DemoReport(directory)
    for claim in claims:
        if claim is None:
            continue
        result.audit_keys.append(claim.audit_key)
        claimed.extend((c.table, c.op, c.key) for c in api.read_claim(config, claim.audit_key))
        say(f"claim {claim.audit_key}: {claim.changes} changes")
    made_by_table = Counter(table for table, _op, _key in app.made)
    claimed_by_table = Counter(table for table, _op, _key in claimed)
    result.per_table = {
        name: (made_by_table[name], claimed_by_table[name])
        for name in ("customer", "order", "order line")
    }
    # Equal as multisets: every committed change claimed, none twice, the rolled-back
    # transaction absent.
    result.ok = Counter(app.made) == Counter(claimed)
    _check_nothing_pending(config, say)
    made_round_three(app)
    exported = api.export_tables(config, until_caught_up=True)
    folders += [export.name for export in exported]
    say(
        f"table export: {len(exported)} more folder(s) with the rows changed since; all in "
        f"{directory / 'exports'}"
    )
    result.folders = folders
    _entities_and_load(config, app, source, result, say)
    return result


def _entities_and_load(
    config: Config, app: SampleApp, source: Path, result: DemoReport, say: Callable[[str], None]
) -> None:
    """Entity export, activity with a transaction open across exports, then load, verify
    and compare."""
    enabled = api.entities_enable(config, [], all_eligible=True, ongoing=True)
    say(f"entities enabled with ongoing capture: {', '.join(enabled)}")
    initial = api.export_initial(config, threads=2)
    if initial is not None:
        say(f"initial export: {initial.records} entities in {len(initial.files)} file(s)")
    made_round_four(app)
    # SQLite has one writer at a time: a transaction that has written blocks every other
    # writer, exports included, and one that has read cannot write after others did. So
    # this one begins before the exports and does its work after them. (On PostgreSQL
    # and MariaDB the tests hold a written, uncommitted row across exports.)
    late = sqlite3.connect(source, isolation_level=None)
    late.execute("BEGIN")
    say("more activity: an update and a new order; another transaction has begun")
    api.export_tables(config, until_caught_up=True)
    api.export_ongoing(config, threads=2)
    late.execute(
        "INSERT INTO customer VALUES (5, 'Late Writer', NULL, '1.00', '2026-11-24 09:00:00')"
    )
    late.execute("COMMIT")
    late.close()
    say("that transaction wrote and committed after those exports: the next ones carry it")
    api.export_tables(config, until_caught_up=True)
    api.export_ongoing(config, threads=2)
    _, problems = api.verify(config)
    say(f"verify: {'every export checks out' if not problems else problems[0]}")
    loaded = api.load(config)
    say(
        f"load: {len(loaded.tables)} table export(s) and {len(loaded.runs)} entity run(s) "
        "applied to the target"
    )
    result.compared = _compare(source, Path(str(config.target.url).removeprefix("sqlite:///")))


def made_round_four(app: SampleApp) -> None:
    """Activity while another transaction is open."""
    app.transaction(
        [
            ("UPDATE customer SET balance = '99.99' WHERE id = 2", (), [("customer", "U", (2,))]),
            (
                "INSERT INTO \"order\" VALUES (4, 1, 'paid', 'first order, \"rushed\"')",
                (),
                [("order", "I", (4, 1))],
            ),
        ]
    )


def _compare(source: Path, target: Path) -> dict[str, tuple[int, int, bool]]:
    """Every sample table's rows in the source and the target, compared as sets (an empty
    string and NULL alike, as entity records write them; numbers by value: the target keeps
    a NUMERIC(18,2), wider than a double, as its digits)."""
    compared = {}
    for table in ("customer", "order", "order line"):
        sides = []
        for path in (source, target):
            with sqlite3.connect(path) as conn:
                quoted = '"' + table.replace('"', '""') + '"'
                rows = conn.execute(f"SELECT * FROM {quoted}").fetchall()
            sides.append({tuple(_value(v) for v in row) for row in rows})
        compared[table] = (len(sides[0]), len(sides[1]), sides[0] == sides[1])
    return compared


def _value(value: object) -> object:
    """A value as the comparison sees it: "" as NULL, a number (or a number's digits) as
    its Decimal."""
    if value == "":
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and _DIGITS.fullmatch(value)):
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    return value


def made_round_one(app: SampleApp) -> None:
    """Inserts, an update, a delete, and a transaction that rolls back."""
    app.transaction(
        [
            (
                "INSERT INTO customer VALUES (3, 'Émile, the \"quoted\"', 'e@example.com', "
                "'12345678901234567.89', '2026-11-03 11:00:00')",
                (),
                [("customer", "I", (3,))],
            ),
            (
                "INSERT INTO \"order\" VALUES (1, 100, 'open', 'line one\nline two')",
                (),
                [("order", "I", (1, 100))],
            ),
            (
                "INSERT INTO \"order line\" VALUES (1, 100, 1, 'SKU-1', 2)",
                (),
                [("order line", "I", (1, 100, 1))],
            ),
        ]
    )
    app.transaction(
        [
            (
                "UPDATE customer SET email = ? WHERE id = ?",
                ("grace@example.com", 2),
                [("customer", "U", (2,))],
            ),
        ]
    )
    app.transaction([("DELETE FROM customer WHERE id = ?", (3,), [])], commit=False)
    app.transaction(
        [
            ("INSERT INTO \"order\" VALUES (2, 7, 'open', NULL)", (), [("order", "I", (2, 7))]),
            (
                'DELETE FROM "order" WHERE customer_id = 2 AND order_no = 7',
                (),
                [("order", "D", (2, 7))],
            ),
        ]
    )


def made_round_two(app: SampleApp) -> None:
    """Updates, a key change (captured as delete + update) and deletes."""
    app.transaction(
        [
            (
                'UPDATE "order" SET order_no = 101 WHERE customer_id = 1 AND order_no = 100',
                (),
                [("order", "D", (1, 100)), ("order", "U", (1, 101))],
            ),
            (
                'UPDATE "order line" SET quantity = quantity + 1',
                (),
                [("order line", "U", (1, 100, 1))],
            ),
            ("DELETE FROM customer WHERE id = 3", (), [("customer", "D", (3,))]),
        ]
    )


def made_round_three(app: SampleApp) -> None:
    """Changes after the claims: these reach the next table export."""
    app.transaction(
        [
            (
                "INSERT INTO customer VALUES (4, 'Dora, \"the\" explorer', NULL, '7.50', "
                "'2026-11-24 08:00:00')",
                (),
                [("customer", "I", (4,))],
            ),
            ("DELETE FROM customer WHERE id = 1", (), [("customer", "D", (1,))]),
        ]
    )


def _check_nothing_pending(config: Config, say: Callable[[str], None]) -> None:
    left = sum(api.pending_changes(config).values())
    say(f"changes still pending after the last claim: {left}")
