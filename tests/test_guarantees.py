"""The guarantee of SPEC.md as a stateful property test: after any interleaving of source
writes, export runs, loads and entity commands, any of them killed with SIGKILL and run
again, a final export and load leave every target equal to the source, and `tidegate
verify` finds nothing wrong.

Each example is a fresh source (a SQLite file, a PostgreSQL schema or a MariaDB database)
with the five tables of tests/appwriter.py, a few rows in them, and `tidegate init` done.
Discovery makes three entities of them: ORDERS (a root with two children, composite
keys), PARENT and CHILD LINE (a root key of two columns). Rules, in any order:

- source writes (`write`, `write_orders`, `write_parents`): transactions of 1-8 random
  inserts, updates, deletes and key changes, committed or rolled back; `begin`,
  `begin_orders` leave one open on a connection of its own, and `finish` changes more in
  it and commits or rolls it back steps later;
- `export tables` (with or without `--until-caught-up`), a restart (`--restart-from-beginning`,
  `--restart-from DATE`, `--reexport-since DATE`), `export initial` (named entities, or the
  pending ones), `export ongoing` (with or without `--auto-backlog`), `load` into either
  target or both, in this process through the library;
- the same exports (restarts included) and loads as real `tidegate` processes
  (tests/forkserver.py) sent SIGKILL at a random moment of how long that command has been
  taking, and `together`: two different jobs as processes at the same time, either maybe
  killed;
- `entities enable [--ongoing]`, `entities disable [--ongoing-only]` and `entities reset`
  on random entities;
- `add_column`: `ALTER TABLE … ADD COLUMN added INTEGER DEFAULT 7` on a random table (once
  per table), which gives every existing row a value no trigger sees, or `ADD COLUMN empty
  INTEGER` (once per table), which the loader migrates.

Any step that touches the source may have an open transaction finish in another thread
while it runs, after a random delay and maybe more changes: a commit racing a claim or a
read. Beside `entities` commands that change triggers (DDL, which waits for the open
writers of its tables) those writers finish at once, without more changes, which would
wait for the DDL while it waits for them.

Open transactions: on PostgreSQL and MariaDB up to three stay open across any steps. On
SQLite a transaction that has written holds the database's only write lock and every
other writer waits for it, so there one at a time stays open, across the steps that do not
write to the source (loads, killed loads, any number of them), and a step that does write
to it finishes the transaction in another thread while it waits (a claim then waits for
the commit and includes its changes).

Targets: the two kinds of export go to two locations and two targets, each drawn per
example from SQLite, DuckDB, PostgreSQL, MariaDB and an Iceberg warehouse: table export
into the tables target,
entity export into the entity target. (Both kinds write the same tables; docs/load.md says
why one target should get one kind: a row changed by one kind after the other's snapshot
is not protected, so target = source would not be well defined for a shared one.)

The final check, after the last step: every open transaction is committed; every entity
is enabled with ongoing capture; one whose ongoing capture was off at any time since its
last initial export seen to complete is reset (what docs/entities.md tells a user to do);
`export initial` (of whatever is not complete), `export tables --until-caught-up`,
`export ongoing` until nothing is queued, `load` into both targets. Then:

- every table of the tables target equals the source, row by row (plain SELECTs on both
  sides, tests/load/helpers.py), and so does the independent stdlib rebuild of every
  table-export folder (tests/tables/independent_reader.py);
- every table of the entity target equals the source (texts right-trimmed, as entity
  records have them);
- nothing is pending or queued, no partial folder is left, a second load applies nothing,
  and `tidegate verify` (the real CLI) reports no problem and no note at either location.

Bounds: a default run does CI_EXAMPLES examples of at most CI_STEPS steps per source
(about 1.5 minutes for the three sources on a shared 2-core machine). With
`pytest tests/test_guarantees.py --long [--long-minutes N]` it runs examples of up to
LONG_STEPS steps for N minutes per source (default 10). Either way the terminal summary
has a line with the examples, steps, kills, schema changes and rows compared. A failing example is
printed as it ran, unshrunk (see NO_SHRINKING).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

import tidegate
from tests.appwriter import (
    OPS,
    ORDER_OPERATIONS,
    PARENT,
    PARENT_OPERATIONS,
    SOME_OPS,
    TABLES,
    Writer,
    operations,
    writer_engine,
)
from tests.conftest import GUARANTEES, Source, Tally, _make_source
from tests.entities.test_initial import fill
from tests.forkserver import ForkServer
from tests.load.conftest import make_target
from tests.load.helpers import assert_target_equals_source
from tests.tables.helpers import assert_rebuild_equals_source
from tests.tables.test_export import parent_values
from tidegate import api
from tidegate.errors import NoExports, TargetError

# `load`'s refusal of a location without exports (before the first export of its kind).
_NO_EXPORT_YET = re.compile(r"location: \S+ (does not exist|holds no export)")
CI_EXAMPLES = 10
CI_STEPS = 30
LONG_STEPS = 80
STALL_SECONDS = 90  # a step taking longer is stuck behind an open transaction
# A failing example is reported as it ran: shrinking replays kills and thread timings,
# which do not replay exactly, and took minutes to get nowhere.
NO_SHRINKING = [Phase.explicit, Phase.reuse, Phase.generate]

ENTITIES = ("ORDERS", "PARENT", "CHILD LINE")
ENTITY_TABLES = {
    "ORDERS": ("orders", "order_lines", "order_notes"),
    "PARENT": ("parent",),
    "CHILD LINE": ("child line",),
}
TARGETS = ["sqlite", "sqlite", "duckdb", "postgresql", "mysql", "iceberg"]

TRANSACTIONS = st.lists(st.tuples(SOME_OPS, st.booleans()), min_size=1, max_size=3)
# Something to finish while a step runs (one time in four): (which open transaction, after
# how long, more changes first, commit?).
MEANWHILE = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.tuples(st.integers(0, 2), st.floats(0, 0.4), OPS, st.booleans()),
)
ENTITY_NAMES = st.lists(st.sampled_from(ENTITIES), min_size=1, max_size=3, unique=True)
MOMENT = st.floats(0, 1)  # where, within its usual duration, a killed run is killed
RESTARTS = st.sampled_from([None, None, "beginning", "from", "reexport"])
# Jobs that can run at the same time: (command, config kind, argv).
TOGETHER = {
    "export tables": ("tables", "tables", ["export", "tables", "--wait", "30"]),
    "export initial": ("initial", "entities", ["export", "initial", "--wait", "30"]),
    "export ongoing": ("ongoing", "entities", ["export", "ongoing", "--wait", "30"]),
    "load tables": ("load", "tables", ["load"]),
    "load entities": ("load", "entities", ["load"]),
}

F = TypeVar("F", bound=Callable[..., Any])


class World:
    """What every example of one source dialect shares."""

    def __init__(
        self, request: pytest.FixtureRequest, dialect: str, root: Path, tally: Tally
    ) -> None:
        self.request = request
        self.dialect = dialect
        self.root = root
        self.tally = tally
        self.server = ForkServer(root)
        self.examples = 0
        # How long each command has been taking (seconds), for where to kill it.
        self.durations = {"tables": 0.3, "initial": 0.3, "ongoing": 0.3, "load": 0.3}

    def took(self, command: str, seconds: float) -> None:
        self.durations[command] = 0.7 * self.durations[command] + 0.3 * seconds


def step(function: F) -> F:
    """A rule's body: counted, and marking the example broken when it fails, so that the
    final check does not pile a second failure on the first."""

    @functools.wraps(function)
    def wrapper(self: Guarantees, *args: Any, **kwargs: Any) -> Any:
        self.world.tally.add("steps", self.world.dialect)
        try:
            return function(self, *args, **kwargs)
        except BaseException:
            self.broken = True
            raise

    return wrapper  # type: ignore[return-value]


class Guarantees(RuleBasedStateMachine):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.broken = False
        self.writers: list[Writer] = []
        self.ready = False

    # -- setup -----------------------------------------------------------------------------

    @initialize(
        target_kind=st.sampled_from(TARGETS),
        entity_target_kind=st.sampled_from(TARGETS),
        max_span=st.sampled_from(["1d", "2s"]),
        records_per_file=st.sampled_from([0, 2]),
        threads=st.sampled_from([1, 2]),
        seed=st.integers(0, 2**32 - 1),
    )
    def setup(
        self,
        target_kind: str,
        entity_target_kind: str,
        max_span: str,
        records_per_file: int,
        threads: int,
        seed: int,
    ) -> None:
        world = self.world
        world.examples += 1
        world.tally.add("examples", world.dialect)
        self.dir = world.root / f"example_{world.examples}"
        self.dir.mkdir()
        self._source = _make_source(world.request, world.dialect, self.dir)
        self.source: Source = next(self._source)
        self.source.create(*TABLES)
        fill(self.source, 12, seed=seed % 1000)
        rng = random.Random(seed)
        with self.source.engine().begin() as conn:
            conn.execute(PARENT.insert(), [parent_values(rng, key) for key in range(1, 9)])
        self.started = dt.datetime.now(dt.UTC)
        self.targets = {
            "tables": make_target(world.request, target_kind, self._dir("tables-target")),
            "entities": make_target(world.request, entity_target_kind, self._dir("entity-target")),
        }
        self.locations = {"tables": self.dir / "table-exports", "entities": self.dir / "entities"}
        self.config_paths = {
            kind: self._write_config(kind, max_span, records_per_file, threads)
            for kind in ("tables", "entities")
        }
        self.configs = {
            kind: tidegate.load_config(path, [], environ={})
            for kind, path in self.config_paths.items()
        }
        tidegate.init(self.configs["tables"])
        self.writer_engine = writer_engine(self.source)
        # Per entity: ongoing capture on, and whether it has been on without a break
        # since before the start of a completed initial export (then ongoing runs alone
        # keep the entity target right).
        self.ongoing = dict.fromkeys(ENTITIES, False)
        self.covered = dict.fromkeys(ENTITIES, False)
        self.altered: set[tuple[str, bool]] = set()
        self.ready = True

    def _dir(self, name: str) -> Path:
        path = self.dir / name
        path.mkdir()
        return path

    def _write_config(self, kind: str, max_span: str, records_per_file: int, threads: int) -> Path:
        source = self.source
        lines = [
            "[source]",
            f'url = "{source.url}"',
            *([f'schema = "{source.schema}"'] if source.schema else []),
            "[output]",
            f'location = "{self.locations[kind]}"',
            "[tables]",
            f'max_span = "{max_span}"',
            "[entities]",
            f"threads = {threads}",
            f"records_per_file = {records_per_file}",
            "[target]",
            f'url = "{self.targets[kind].url}"',
        ]
        path = self.dir / f"{kind}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- source writes ---------------------------------------------------------------------

    def _may_open(self) -> bool:
        return len(self.writers) < (1 if self.world.dialect == "sqlite" else 3)

    def _may_write(self) -> bool:
        # On SQLite another writer would wait for the open transaction's lock.
        return self.world.dialect != "sqlite" or not self.writers

    # Several rules write, so that writes stay frequent whichever rules hypothesis leaves
    # out of an example (it runs each example with a random subset of the rules).

    @precondition(lambda self: self._may_write())
    @rule(transactions=TRANSACTIONS)
    @step
    def write(self, transactions: list[tuple[list[tuple[str, int]], bool]]) -> None:
        for ops, commit in transactions:
            self._transaction(ops, commit)

    @precondition(lambda self: self._may_write())
    @rule(ops=operations(ORDER_OPERATIONS, 1), commit=st.booleans())
    @step
    def write_orders(self, ops: list[tuple[str, int]], commit: bool) -> None:
        self._transaction(ops, commit)

    @precondition(lambda self: self._may_write())
    @rule(ops=operations(PARENT_OPERATIONS, 1), commit=st.booleans())
    @step
    def write_parents(self, ops: list[tuple[str, int]], commit: bool) -> None:
        self._transaction(ops, commit)

    def _transaction(self, ops: list[tuple[str, int]], commit: bool) -> None:
        Writer(self.writer_engine, self.world.dialect).finish(ops, self.writers, commit)

    @precondition(lambda self: self._may_open() and self._may_write())
    @rule(ops=SOME_OPS)
    @step
    def begin(self, ops: list[tuple[str, int]]) -> None:
        self._open(ops)

    @precondition(lambda self: self._may_open() and self._may_write())
    @rule(ops=operations(ORDER_OPERATIONS, 1))
    @step
    def begin_orders(self, ops: list[tuple[str, int]]) -> None:
        self._open(ops)

    def _open(self, ops: list[tuple[str, int]]) -> None:
        writer = Writer(self.writer_engine, self.world.dialect)
        self.writers.append(writer)
        self._change(writer, ops)

    @precondition(lambda self: bool(self.writers))
    @rule(index=st.integers(0, 2), ops=OPS, commit=st.booleans())
    @step
    def finish(self, index: int, ops: list[tuple[str, int]], commit: bool) -> None:
        writer = self.writers.pop(index % len(self.writers))
        writer.finish(ops, self.writers, commit)

    def _change(self, writer: Writer, ops: list[tuple[str, int]]) -> None:
        writer.change(ops, [other for other in self.writers if other is not writer])

    @contextmanager
    def meanwhile(
        self,
        chosen: tuple[int, float, list[tuple[str, int]], bool] | None,
        *,
        ddl: frozenset[str] = frozenset(),
    ) -> Iterator[None]:
        """Run a step while, in another thread, an open transaction finishes (on SQLite
        always, when one is open: the step would wait for it). Beside DDL on the tables
        `ddl`, which waits for every open writer of those tables, each of them finishes at
        once, with no more changes: a change then would wait for the DDL, and the DDL for
        it."""
        waited_for = [w for w in self.writers if w.tables & ddl]
        if waited_for and self.world.dialect != "sqlite":
            chosen = chosen or (0, 0.05, [], True)
            finishing = waited_for
            ops: list[tuple[str, int]] = []
        elif chosen is None and self.world.dialect == "sqlite" and self.writers:
            chosen = (0, 0.05, [], True)
            finishing = list(self.writers)
            ops = []
        elif chosen is not None and self.writers:
            finishing = [self.writers[chosen[0] % len(self.writers)]]
            ops = chosen[2]
        else:
            finishing = []
        failures: list[BaseException] = []

        def finish() -> None:
            assert chosen is not None
            time.sleep(chosen[1])
            for writer in finishing:
                try:
                    writer.finish(ops, self.writers, chosen[3])
                except BaseException as error:
                    failures.append(error)

        thread = threading.Thread(target=finish, daemon=True) if finishing else None
        for writer in finishing:
            self.writers.remove(writer)
        if thread is not None:
            thread.start()
        with self.watchdog(finishing):
            try:
                yield
            finally:
                if thread is not None:
                    thread.join(STALL_SECONDS)
                    assert not thread.is_alive(), "a finishing transaction is stuck"
        if failures:
            raise failures[0]

    @contextmanager
    def watchdog(self, finishing: list[Writer]) -> Iterator[None]:
        """Fail a step that waits too long, by ending the open transactions' sessions on
        the server (the only thing it can be waiting for): a hang becomes an error."""
        stalled: list[bool] = []

        def cut() -> None:
            stalled.append(True)
            statement = {
                "postgresql": "SELECT pg_terminate_backend({})",
                "mysql": "KILL {}",
            }.get(self.world.dialect)
            if statement is None:
                return
            with self.source.engine().connect() as admin:
                for writer in self.writers + finishing:
                    admin.exec_driver_sql(statement.format(int(writer.session or 0)))

        timer = threading.Timer(STALL_SECONDS, cut)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
        assert not stalled, f"a step waited {STALL_SECONDS} s for an open transaction"

    # -- exports and loads, in this process ------------------------------------------------

    @rule(until_caught_up=st.booleans(), meanwhile=MEANWHILE)
    @step
    def export_tables(self, until_caught_up: bool, meanwhile: Any) -> None:
        with self.meanwhile(meanwhile), self.timed("tables"):
            tidegate.export_tables(
                self.configs["tables"], until_caught_up=until_caught_up, wait_seconds=30
            )

    @rule(
        option=st.sampled_from(["beginning", "from", "reexport"]), back=MOMENT, meanwhile=MEANWHILE
    )
    @step
    def restart(self, option: str, back: float, meanwhile: Any) -> None:
        """A restart option. Without `[tables] time_columns`, `--restart-from DATE` exports
        every table whole, like `--restart-from-beginning` (a restart from a date with time
        columns leaves older rows out of the new stream by design: a target loaded from it
        does not hold them). `--reexport-since` re-sends, forward, what changed since."""
        with self.meanwhile(meanwhile), self.timed("tables"):
            tidegate.export_tables(
                self.configs["tables"], wait_seconds=30, **self._restart(option, back)
            )

    def _restart(self, option: str, back: float) -> dict[str, Any]:
        moment = self.started + (dt.datetime.now(dt.UTC) - self.started) * back
        if option == "beginning":
            return {"restart_from_beginning": True}
        if option == "from":
            return {"restart_from": moment}
        return {"reexport_since": moment}

    @rule(named=ENTITY_NAMES, pending_only=st.booleans(), meanwhile=MEANWHILE)
    @step
    def export_initial(self, named: list[str], pending_only: bool, meanwhile: Any) -> None:
        ongoing = dict(self.ongoing)
        with self.meanwhile(meanwhile), self.timed("initial"):
            result = api.export_initial(
                self.configs["entities"], [] if pending_only else named, wait_seconds=30
            )
        for name in result.entities if result else []:
            self.covered[name] = ongoing[name]

    @rule(auto_backlog=st.booleans(), meanwhile=MEANWHILE)
    @step
    def export_ongoing(self, auto_backlog: bool, meanwhile: Any) -> None:
        with self.meanwhile(meanwhile), self.timed("ongoing"):
            api.export_ongoing(self.configs["entities"], auto_backlog=auto_backlog, wait_seconds=30)

    @rule(which=st.sampled_from(["tables", "entities", "both"]))
    @step
    def load(self, which: str) -> None:
        for kind in ("tables", "entities") if which == "both" else (which,):
            with self.timed("load"):
                self._load(kind)

    def _load(self, kind: str) -> api.LoadResult:
        """Load into a target; a load killed a moment ago may still hold a server target's
        lock until the server notices, so a clash is tried again, as a user would."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return api.load(self.configs[kind])
            except NoExports:  # before the first export of its kind: nothing to load
                return api.LoadResult()
            except TargetError as error:
                if "another load" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @contextmanager
    def timed(self, command: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.world.took(command, time.monotonic() - started)

    # -- the same, killed ------------------------------------------------------------------

    def killed(self, command: str, kind: str, argv: list[str], moment: float) -> None:
        """Run a real tidegate process and send it SIGKILL at `moment` of the time the
        command has been taking (a little past it: some runs end first)."""
        self.processes([(command, kind, argv, moment)])

    def processes(self, runs: list[tuple[str, str, list[str], float | None]]) -> None:
        """Run real tidegate processes at once: (command, config kind, argv, moment to
        kill it at, or None to let it finish). One that is not killed must succeed."""
        ended = self.world.server.run_together(
            [
                (
                    ["--config", str(self.config_paths[kind]), *argv],
                    self.dir,
                    None if moment is None else moment * 1.3 * self.world.durations[command],
                )
                for command, kind, argv, moment in runs
            ]
        )
        for (command, _kind, argv, _moment), end in zip(runs, ended, strict=True):
            if end.killed:
                self.world.tally.add("kills", self.world.dialect)
                continue
            if len(runs) == 1:
                self.world.took(command, end.seconds)
            if argv[0] == "load" and _NO_EXPORT_YET.search(end.output):
                continue  # a load before the first export of its kind: refused, rightly
            assert end.code == 0, f"tidegate {' '.join(argv)} ended with {end.code}:\n{end.output}"

    @rule(
        pair=st.lists(st.sampled_from(sorted(TOGETHER)), min_size=2, max_size=2, unique=True),
        moments=st.tuples(st.one_of(st.none(), MOMENT), st.one_of(st.none(), MOMENT)),
        meanwhile=MEANWHILE,
    )
    @step
    def together(
        self, pair: list[str], moments: tuple[float | None, float | None], meanwhile: Any
    ) -> None:
        """Two different jobs as real processes at the same time (a cron job beside the
        service, say), either of them maybe killed."""
        runs = [(*TOGETHER[name], moment) for name, moment in zip(pair, moments, strict=True)]
        with self.meanwhile(meanwhile):
            self.processes(runs)

    @rule(restart=RESTARTS, back=MOMENT, moment=MOMENT, meanwhile=MEANWHILE)
    @step
    def export_tables_killed(
        self, restart: str | None, back: float, moment: float, meanwhile: Any
    ) -> None:
        argv = ["export", "tables", "--wait", "30"]
        if restart is not None:
            for option, value in self._restart(restart, back).items():
                flag = "--" + option.replace("_", "-")
                argv += [flag] if value is True else [flag, value.isoformat()]
        with self.meanwhile(meanwhile):
            self.killed("tables", "tables", argv, moment)

    @rule(named=ENTITY_NAMES, pending_only=st.booleans(), moment=MOMENT, meanwhile=MEANWHILE)
    @step
    def export_initial_killed(
        self, named: list[str], pending_only: bool, moment: float, meanwhile: Any
    ) -> None:
        # A killed run never completes an initial export (its files have no manifest); one
        # that ended first may have, but coverage is only ever claimed for runs seen to end.
        argv = ["export", "initial", "--wait", "30", *([] if pending_only else named)]
        with self.meanwhile(meanwhile):
            self.killed("initial", "entities", argv, moment)

    @rule(auto_backlog=st.booleans(), moment=MOMENT, meanwhile=MEANWHILE)
    @step
    def export_ongoing_killed(self, auto_backlog: bool, moment: float, meanwhile: Any) -> None:
        argv = ["export", "ongoing", "--wait", "30", *(["--auto-backlog"] if auto_backlog else [])]
        with self.meanwhile(meanwhile):
            self.killed("ongoing", "entities", argv, moment)

    @rule(kind=st.sampled_from(["tables", "entities"]), moment=MOMENT)
    @step
    def load_killed(self, kind: str, moment: float) -> None:
        self.killed("load", kind, ["load"], moment)

    # -- entity commands -------------------------------------------------------------------

    @rule(names=ENTITY_NAMES, ongoing=st.booleans(), meanwhile=MEANWHILE)
    @step
    def enable(self, names: list[str], ongoing: bool, meanwhile: Any) -> None:
        with self.meanwhile(meanwhile, ddl=_tables_of(names) if ongoing else frozenset()):
            api.entities_enable(self.configs["entities"], names, ongoing=ongoing)
        for name in names if ongoing else []:
            if not self.ongoing[name]:
                self.ongoing[name] = True
                self.covered[name] = False  # capture was off until now

    @rule(names=ENTITY_NAMES, ongoing_only=st.booleans(), meanwhile=MEANWHILE)
    @step
    def disable(self, names: list[str], ongoing_only: bool, meanwhile: Any) -> None:
        with self.meanwhile(meanwhile, ddl=_tables_of(names)):
            api.entities_disable(self.configs["entities"], names, ongoing_only=ongoing_only)
        for name in names:
            self.ongoing[name] = self.covered[name] = False

    @rule(names=ENTITY_NAMES, meanwhile=MEANWHILE)
    @step
    def reset(self, names: list[str], meanwhile: Any) -> None:
        with self.meanwhile(meanwhile):
            api.entities_reset(self.configs["entities"], names)

    # -- schema changes --------------------------------------------------------------------

    @rule(
        table=st.sampled_from([table.name for table in TABLES]),
        default=st.booleans(),
        meanwhile=MEANWHILE,
    )
    @step
    def add_column(self, table: str, default: bool, meanwhile: Any) -> None:
        """A column added, once per table with a default and once without. With one every
        existing row gets a value that no trigger sees (tables/drift.py and
        entities/drift.py export them again); without one the table is migrated, its
        changes exported as before."""
        if (table, default) in self.altered:
            return
        column = "added INTEGER DEFAULT 7" if default else "empty INTEGER"
        with self.meanwhile(meanwhile, ddl=frozenset({table})):
            engine = self.source.engine()
            quote = engine.dialect.identifier_preparer.quote
            name = (
                quote(table)
                if not self.source.schema
                else (f"{quote(self.source.schema)}.{quote(table)}")
            )
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {column}")
        self.altered.add((table, default))
        self.world.tally.add("ddl", self.world.dialect)

    # -- the guarantee ---------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if self.ready and not self.broken:
                self.final_check()
                self.world.tally.add("verified", self.world.dialect)
        finally:
            for writer in self.writers:
                writer.end(False)
            if self.ready:
                for target in self.targets.values():
                    target.dispose()
                next(self._source, None)  # disposes the source's engines

    def final_check(self) -> None:
        """The final export and load, then target = source, nothing pending, verify clean."""
        for writer in self.writers:
            writer.end(True)
        self.writers = []
        tables, entities = self.configs["tables"], self.configs["entities"]
        api.entities_enable(entities, ENTITIES, ongoing=True)
        stale = [name for name in ENTITIES if not (self.ongoing[name] and self.covered[name])]
        if stale:  # capture was off at some time: the initial export must be done again
            api.entities_reset(entities, stale)
        api.export_initial(entities)  # every entity whose initial export is not complete
        tidegate.export_tables(tables, until_caught_up=True)
        while any(run.records for run in api.export_ongoing(entities)):
            pass
        for kind in ("tables", "entities"):
            self._load(kind)
            again = self._load(kind)
            assert not again.tables and not again.runs, f"a second load applied {again}"

        rows = 0
        for table in TABLES:
            rows += assert_target_equals_source(self.source, self.targets["tables"], table.name)
        rebuilt = assert_rebuild_equals_source(self.source, self.locations["tables"], *TABLES)
        rows += sum(len(rows_) for rows_ in rebuilt.tables.values())
        for name in ENTITIES:
            rows += assert_target_equals_source(
                self.source, self.targets["entities"], *ENTITY_TABLES[name], trimmed=True
            )
        self.world.tally.add("rows", self.world.dialect, rows)

        assert not any(api.pending_changes(tables).values()), "changes left pending"
        assert all(s.queue_depth == 0 for s in api.entities_list(entities)), "entities queued"
        staging = self.locations["tables"] / ".tidegate-staging"
        assert not staging.exists() or not any(staging.iterdir()), "a partial folder was left"
        for kind in ("tables", "entities"):
            ended = self.world.server.run(
                ["--config", str(self.config_paths[kind]), "verify"], self.dir
            )
            assert ended.code == 0 and "all verified" in ended.output, ended.output
            assert "note:" not in ended.output, ended.output


def _tables_of(names: list[str]) -> frozenset[str]:
    return frozenset(table for name in names for table in ENTITY_TABLES[name])


def _run(request: pytest.FixtureRequest, dialect: str, tmp_path: Path) -> None:
    tally = request.config.stash[GUARANTEES]
    world = World(request, dialect, tmp_path, tally)
    long = request.config.getoption("--long")
    started = time.monotonic()
    try:
        if not long:
            run_state_machine_as_test(
                lambda: Guarantees(world),
                settings=settings(
                    max_examples=CI_EXAMPLES,
                    stateful_step_count=CI_STEPS,
                    deadline=None,
                    phases=NO_SHRINKING,
                    suppress_health_check=list(HealthCheck),
                ),
            )
            return
        deadline = started + 60 * float(request.config.getoption("--long-minutes"))
        while time.monotonic() < deadline:  # batches of fresh random examples until then
            run_state_machine_as_test(
                lambda: Guarantees(world),
                settings=settings(
                    max_examples=5,
                    stateful_step_count=LONG_STEPS,
                    deadline=None,
                    database=None,
                    phases=NO_SHRINKING,
                    suppress_health_check=list(HealthCheck),
                ),
            )
    finally:
        tally.add("seconds", dialect, time.monotonic() - started)
        world.server.close()


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_any_interleaving_then_a_final_export_and_load_leaves_targets_equal_to_the_source(
    request: pytest.FixtureRequest, tmp_path: Path, dialect: str
) -> None:
    _run(request, dialect, tmp_path)
