"""Entity runs into an Iceberg warehouse: each entity's rows replaced by its newest record,
with the rules of a SQL target (entityrun.py, the reference), kept without transactions
across tables.

Versions live in the Iceberg table `tidegate_entity_version` of the namespace (entity, key
sha1, TIMESTAMP, key), and the start of the newest initial run applied per entity in that
table's property `tidegate.entity-floors`.

A run is applied in steps: each batch of BATCH_RECORDS records, in the manifest's order
(the size its first commit recorded, when a load of it was killed), then (an initial run)
the removal of the entities it did not find. A step commits every
table it changes, each with the table property `tidegate.entity-run` = {run, step} in the
same commit as its rows, then the version table, with its own. The records a step
applies are chosen against the version table as it was before the step, which changes
only in the step's last commit; so a load killed anywhere in a step, run again, chooses
the same records, skips the tables already at that step, and applies nothing twice.
Once the run's last step is in, the namespace property `tidegate.entity-runs` records the
run (run numbers as ranges, by kind), and later loads skip it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import tzinfo
from typing import Any

from tidegate.errors import LoadError
from tidegate.formats.runmanifest import EntityTable, RunManifest
from tidegate.formats.tableschema import ColumnSchema, TableSchema
from tidegate.load.entityrun import Entity, Record, read_records, row_values
from tidegate.load.iceberg import IcebergTarget, key_filter, refuse_inexact
from tidegate.load.inventory import ENTITY_FOLDER, EntityRun
from tidegate.load.targets import TargetDialect
from tidegate.load.targets.base import exact_json
from tidegate.load.values import Convert
from tidegate.storage import Location

VERSIONS = "tidegate_entity_version"
RUN_STEP = "tidegate.entity-run"  # table property: {"run": label, "step": n, "batch": size}
FLOORS = "tidegate.entity-floors"  # version table property: {entity: start of its initial run}
APPLIED_RUNS = "tidegate.entity-runs"  # namespace property: {kind: [[first, last], …]}
BATCH_RECORDS = 20_000  # records per step (held in memory as Python objects, with their rows)


def _expressions() -> Any:
    """pyiceberg's row filters (its predicates are pydantic models, which typing misreads)."""
    from pyiceberg import expressions

    return expressions


class _IcebergValues(TargetDialect):
    """An Iceberg table's forms of an entity record's values: a JSON document is kept as
    its text (an Iceberg string), every digit of its numbers kept; a date or time Arrow
    cannot write is refused, naming its column."""

    def entity_parser(self, kind: str, parse: Any) -> Any:
        if kind == "json":
            return lambda value: exact_json(parse(value))
        if kind in _HELD_DATES:
            return lambda value: _held_date(kind, parse(value))
        return parse


# What Arrow writes into Iceberg's date and time types: Python's dates and times.
_HELD_DATES = {
    "date": "dates of years 1 to 9999",
    "timestamp": "date-times of years 1 to 9999",
    "timestamptz": "date-times of years 1 to 9999",
    "time": "times of day before 24:00:00",
}


def _held_date(kind: str, value: Any) -> Any:
    """A date or time as values.py parsed it, refused when it is still text: values.py
    leaves as their text what Python's types cannot hold (infinity, a date BC or past
    9999, 24:00:00), which a SQL target reads, but Arrow could not write (it failed
    naming no column). A table export's load refuses the same values."""
    if isinstance(value, str):
        raise ValueError(f"{value!r}: a load into Iceberg takes {_HELD_DATES[kind]}")
    return value


# --- which runs the warehouse applied --------------------------------------------------


def applied_runs(target: IcebergTarget) -> dict[str, list[list[int]]]:
    """The entity runs applied whole: run numbers as ranges [first, last], by kind."""
    properties = target.namespace_properties()
    return dict(json.loads(properties.get(APPLIED_RUNS, "{}")))


def holds(applied: dict[str, list[list[int]]], run: EntityRun) -> bool:
    return any(first <= run.run <= last for first, last in applied.get(run.kind, []))


def _with_run(applied: dict[str, list[list[int]]], run: EntityRun) -> dict[str, list[list[int]]]:
    """The ranges with the run's number added (joined to its neighbours)."""
    ranges: list[list[int]] = []
    for first, last in sorted([*applied.get(run.kind, []), [run.run, run.run]]):
        if ranges and first <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], last)
        else:
            ranges.append([first, last])
    return {**applied, run.kind: ranges}


# --- applying a run -------------------------------------------------------------------


class _Run:
    """One run being applied: its entities, their Iceberg tables, the version table."""

    def __init__(
        self, target: IcebergTarget, location: Location, run: EntityRun, zone: tzinfo
    ) -> None:
        self.target, self.location, self.run = target, location, run
        manifest: RunManifest = run.manifest
        schemas = {t.schema.name: t.schema for ts in manifest.definitions.values() for t in ts}
        for schema in schemas.values():
            refuse_inexact(schema)
        self.tables = {name: target.prepared(schema) for name, schema in schemas.items()}
        self.versions = target.prepared(_VERSION_SCHEMA)
        values = _IcebergValues()
        self.entities = {
            name: Entity(name, tables, {t.schema.name: t.schema.name for t in tables}, zone, values)
            for name, tables in manifest.definitions.items()
        }
        self.floors: dict[str, str] = json.loads(self.versions.properties.get(FLOORS, "{}"))
        self.fresh = self._fresh()
        self.batch_records = self._batch_records()

    def _batch_records(self) -> int:
        """The records per step: as a killed load of the run cut its steps, if one did
        (steps cut otherwise would not be the steps its commits recorded)."""
        for table in [*self.tables.values(), self.versions]:
            position = json.loads(table.properties.get(RUN_STEP, "{}"))
            if position.get("run") == self.label:
                return int(position["batch"])
        return BATCH_RECORDS

    def position(self, step: int) -> dict[str, str]:
        """The table property recording a step of this run as committed."""
        return {
            RUN_STEP: json.dumps({"run": self.label, "step": step, "batch": self.batch_records})
        }

    @property
    def label(self) -> str:
        return self.run.label

    def _fresh(self) -> set[str]:
        """The entities whose tables hold no row (their first load, or a load killed
        before its first commit): their rows are deleted only where a version is held.
        (Not an entity with a table another entity of the run shares.)"""
        seen: dict[str, int] = {}
        for entity in self.entities.values():
            for described, _ in entity.tables:
                seen[described.schema.name] = seen.get(described.schema.name, 0) + 1
        return {
            name
            for name, entity in self.entities.items()
            if all(seen[t.schema.name] == 1 for t, _ in entity.tables)
            and all(_empty(self.tables[t.schema.name]) for t, _ in entity.tables)
        }

    def step_of(self, table: Any) -> int:
        """The last step of this run the table holds (-1: none)."""
        position = json.loads(table.properties.get(RUN_STEP, "{}"))
        return int(position["step"]) if position.get("run") == self.label else -1

    def batches(self) -> Iterator[list[Record]]:
        """The run's records, BATCH_RECORDS at a time, in the manifest's order."""
        batch: list[Record] = []
        for file in self.run.manifest.files:
            for record in read_records(self.location, ENTITY_FOLDER, file, self.entities):
                batch.append(record)
                if len(batch) >= self.batch_records:
                    yield batch
                    batch = []
        if batch:
            yield batch


def apply_run(target: IcebergTarget, location: Location, run: EntityRun, zone: tzinfo) -> int:
    """Apply every step of the run the warehouse does not hold; the records applied."""
    with warnings.catch_warnings():
        # pyiceberg warns when a delete finds nothing: expected (an entity's first record)
        warnings.filterwarnings("ignore", "Delete operation did not match", UserWarning)
        return _apply_steps(_Run(target, location, run, zone))


def _apply_steps(state: _Run) -> int:
    target, run = state.target, state.run
    done = state.step_of(state.versions)
    start, applied, step = run.manifest.created, 0, -1
    for step, batch in enumerate(state.batches()):
        start = min(start, *(record.stamp for record in batch))
        if step > done:
            applied += _apply_batch(state, batch, step)
    if run.manifest.kind == "INIT_EXPORT" and step + 1 > done:
        _remove_older(state, start, step + 1)
    target.update_namespace_properties(
        {APPLIED_RUNS: json.dumps(_with_run(applied_runs(target), run))}
    )
    return applied


def _apply_batch(state: _Run, batch: list[Record], step: int) -> int:
    """One step: the newest record of each entity key in the batch that is newer than the
    version held and the entity's floor, applied to every table, then its versions."""
    newest: dict[tuple[str, str], Record] = {}
    for record in batch:
        ident = record.ident  # (a property: taken once per record)
        before = newest.get(ident)
        if before is None or record.stamp >= before.stamp:
            newest[ident] = record
    held = _held(state.versions, list(newest))
    floors = state.floors
    chosen = {
        ident: record
        for ident, record in newest.items()
        if max(held.get(ident, ""), floors.get(record.entity, "")) < record.stamp
    }
    replaced = [record for ident, record in chosen.items() if ident in held]
    stale = [r for r in chosen.values() if r.entity not in state.fresh] + [
        r for r in replaced if r.entity in state.fresh
    ]
    _replace_rows(state, list(chosen.values()), stale, step)
    _commit_versions(state, replaced, list(chosen.values()), step)
    return len(chosen)


def _replace_rows(state: _Run, records: list[Record], stale: list[Record], step: int) -> None:
    """Each table's commit for the step: the rows of the `stale` entities deleted (by the
    root key), the rows of `records` appended (none for a DELETED one). Every table's
    rows are converted before the first commit, so a value refused leaves the step
    unwritten (not an entity's parent row committed without its children)."""
    # the tables a killed load committed this step before are skipped
    pending = {n: t for n, t in state.tables.items() if state.step_of(t) < step}
    appended: dict[str, Any] = {}
    for name, table in pending.items():
        rows = _rows(state, name, records)
        if rows:
            appended[name] = _arrow_rows(rows, table, name, records)
    for name, table in pending.items():
        arrow_schema = table.schema().as_arrow()
        transaction = table.transaction()
        for entity, described in _entities_of(state, name):
            keys = [r.key for r in stale if r.entity == entity.name]
            if keys:
                transaction.delete(_root_filter(entity, described, keys, arrow_schema))
        if name in appended:
            transaction.append(appended[name])
        transaction.set_properties(state.position(step))
        transaction.commit_transaction()


def _entities_of(state: _Run, table: str) -> Iterator[tuple[Entity, EntityTable]]:
    for entity in state.entities.values():
        for described, _ in entity.tables:
            if described.schema.name == table:
                yield entity, described


def _rows(state: _Run, table: str, records: list[Record]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        if record.deleted or table not in record.data:
            continue
        entity = state.entities[record.entity]
        schema = entity.schemas[table]
        converts = entity.converts[table]
        for row in record.data[table]:
            rows.append(row_values(row, converts, schema, schema.primary_key, record.where))
    return rows


def _arrow_rows(rows: list[dict[str, Any]], table: Any, name: str, records: list[Record]) -> Any:
    """The rows as an Arrow table of the Iceberg columns' types; a value a column cannot
    hold exactly (a time of 24:00, a date-time past year 9999, a decimal with more digits
    than its scale) is refused, naming the table."""
    import pyarrow as pa

    arrow_schema = table.schema().as_arrow()
    try:
        return pa.Table.from_pylist(rows, schema=arrow_schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError) as error:
        where = records[0].where.rsplit(": record", 1)[0]
        raise LoadError(
            f"{where}: table {name!r}: a value Iceberg cannot hold as it is: "
            f"{' '.join(str(error).split())[:200]}",
            "load this entity into a SQL target, or leave it out of this one",
        ) from None


def _root_filter(
    entity: Entity, described: EntityTable, keys: list[tuple[str, ...]], arrow_schema: Any
) -> Any:
    """A row filter matching the rows of some entities in one of their tables: their
    root-key columns holding the keys (converted as that table's columns)."""
    import pyarrow as pa

    converts: dict[str, Convert] = entity.converts[described.schema.name]
    columns = list(described.root_key)
    values = {
        column: [converts[column](key[index]) for key in keys]
        for index, column in enumerate(columns)
    }
    return key_filter(pa.table(values), columns, arrow_schema)


def _held(versions: Any, idents: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The TIMESTAMP held for each (entity, key sha1). The version table is read by entity
    and matched in Arrow: an `In` filter of a step's thousands of keys cost pyiceberg
    about 30 µs a key to bind, several times per scan (most of a run's time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    _expr = _expressions()
    by_entity: dict[str, list[str]] = {}
    for entity, sha1 in idents:
        by_entity.setdefault(entity, []).append(sha1)
    held: dict[tuple[str, str], str] = {}
    for entity, sha1s in by_entity.items():
        wanted = pa.array(sha1s)
        scan = versions.scan(
            row_filter=_expr.EqualTo("entity", entity), selected_fields=("key_sha1", "stamp")
        )
        for batch in scan.to_arrow_batch_reader():  # batch by batch: memory stays flat
            found = batch.filter(pc.is_in(batch["key_sha1"], value_set=wanted))
            sha1s_held, stamps = found["key_sha1"].to_pylist(), found["stamp"].to_pylist()
            held.update({(entity, s): t for s, t in zip(sha1s_held, stamps, strict=True)})
    return held


def _commit_versions(state: _Run, replaced: list[Record], chosen: list[Record], step: int) -> None:
    """The version table's commit for the step: the versions of `replaced` deleted, those
    of `chosen` appended, and the step recorded (the step's last commit)."""
    _expr = _expressions()
    import pyarrow as pa

    transaction = state.versions.transaction()
    for entity in {r.entity for r in replaced}:
        sha1s = {r.ident[1] for r in replaced if r.entity == entity}
        transaction.delete(_expr.And(_expr.EqualTo("entity", entity), _expr.In("key_sha1", sha1s)))
    if chosen:
        rows = [
            {"entity": r.entity, "key_sha1": r.ident[1], "stamp": r.stamp, "pk": r.pk}
            for r in chosen
        ]
        transaction.append(pa.Table.from_pylist(rows, schema=state.versions.schema().as_arrow()))
    transaction.set_properties(state.position(step))
    transaction.commit_transaction()


def _remove_older(state: _Run, start: str, step: int) -> None:
    """An initial run's last step: the entities held from records older than its start
    (ones it did not find) removed from every table, their versions with them, and the
    start kept as each entity's floor (entityrun.py says why)."""
    _expr = _expressions()

    definitions = state.run.manifest.definitions
    renewed = [name for name in definitions if start > state.floors.get(name, "")]
    gone: list[Record] = []
    for name in renewed:
        older = _expr.And(_expr.EqualTo("entity", name), _expr.LessThan("stamp", start))
        keys = state.versions.scan(row_filter=older, selected_fields=("pk",)).to_arrow()["pk"]
        gone += [Record(name, start, tuple(json.loads(pk)), True, {}) for pk in keys.to_pylist()]
    _replace_rows(state, [], gone, step)
    floors = {**state.floors, **{name: start for name in renewed}}
    transaction = state.versions.transaction()
    older = [
        _expr.And(_expr.EqualTo("entity", name), _expr.LessThan("stamp", start)) for name in renewed
    ]
    if older:
        transaction.delete(_expr.Or(*older) if len(older) > 1 else older[0])
    transaction.set_properties({FLOORS: json.dumps(floors), **state.position(step)})
    transaction.commit_transaction()


def _empty(table: Any) -> bool:
    snapshot = table.current_snapshot()
    return snapshot is None or int(snapshot.summary.get("total-records", "0") or 0) == 0


_VERSION_SCHEMA = TableSchema(
    VERSIONS,
    (
        ColumnSchema("entity", "text", nullable=False),
        ColumnSchema("key_sha1", "text", nullable=False),
        ColumnSchema("stamp", "text", nullable=False),
        ColumnSchema("pk", "text", nullable=False),
    ),
    ("entity", "key_sha1"),
)
