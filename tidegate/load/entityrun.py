"""Applying one entity run (initial or ongoing) to the target, inside the caller's
transaction: set-based in SQL where the target can (`entitysql`, PostgreSQL), else, and
whenever that path declines a run, record by record here (the reference semantics).

Files are read in the manifest's order, each streamed (`runfiles`: hashed, un-gzipped,
split into lines no longer than the manifest allows, checked against the manifest when it
ends), each line one record. Records are applied in batches of BATCH_RECORDS: a record
whose `TIMESTAMP` is not newer than the one the target holds for that entity is skipped;
otherwise the entity's rows are deleted from every one of its tables (by the root-key
columns: one statement per table and batch, skipped for an entity whose tables were empty
when the run began, its first load) and the record's rows inserted in bulk
(`TargetDialect.insert_rows`: COPY on PostgreSQL, Arrow on DuckDB), or only deleted for a
`DELETED` record; the versions applied are replaced per batch the same way.

An initial run holds every entity of its kinds that existed when it read them, each read
at or after the run's start (its manifest's `created`; or its oldest record's `TIMESTAMP`,
should that be earlier). So once its records are applied:

- an entity the target still holds from a record older than the run's start is one the
  run did not find: it is removed, as a `DELETED` record would remove it (an entity
  deleted while ongoing capture was off, say);
- any record older than the run's start is skipped from then on, held entity or not
  (`tidegate_entity_initial` keeps the start of the newest initial run applied per
  entity): the run knows newer what became of that entity. Without this, an ongoing run
  applied after a newer initial run (initial runs are applied first) could bring back an
  entity deleted since.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.errors import LoadError
from tidegate.formats.runmanifest import EntityTable, RunFile, RunManifest
from tidegate.formats.tableschema import TableSchema
from tidegate.load import entitysql
from tidegate.load.runfiles import record_lines
from tidegate.load.staging import REFUSAL_HINT, refusal
from tidegate.load.target import initial_table, version_key, version_table
from tidegate.load.targets import TargetDialect
from tidegate.load.values import Convert, converter
from tidegate.storage import Location

BATCH_RECORDS = 1000
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    entity: str
    stamp: str
    key: tuple[str, ...]
    deleted: bool
    data: dict[str, list[dict[str, Any]]]
    where: str = ""  # file and record number, for messages

    @functools.cached_property
    def _version_key(self) -> tuple[str, str]:
        return version_key(self.key)

    @property
    def pk(self) -> str:
        """The key as the version table keeps it (a JSON array)."""
        return self._version_key[0]

    @property
    def ident(self) -> tuple[str, str]:
        """(entity, key sha1): the version table's key."""
        return self.entity, self._version_key[1]


class Entity:
    """An entity's tables in the target, with their value converters."""

    def __init__(
        self,
        name: str,
        tables: Sequence[EntityTable],
        targets: Mapping[str, Any],
        zone: tzinfo,
        dialect: TargetDialect,
    ) -> None:
        """`targets`: each table's place in the target, by name (a SQLAlchemy table; an
        Iceberg load keeps the name)."""
        self.name = name
        self.tables = [(t, targets[t.schema.name]) for t in tables]
        self.converts: dict[str, dict[str, Convert]] = {
            t.schema.name: {c.name: converter(c, zone, dialect) for c in t.schema.columns}
            for t in tables
        }
        self.keys = {t.schema.name: t.schema.primary_key for t in tables}
        self.schemas = {t.schema.name: t.schema for t in tables}
        self.dialect = dialect


def apply_run(
    conn: Connection,
    location: Location,
    folder: str,
    manifest: RunManifest,
    targets: dict[str, sa.Table],
    zone: tzinfo,
    dialect: TargetDialect,
) -> int:
    """Apply every record of the run; the number applied (skipped ones not counted)."""
    entities = {
        name: Entity(name, tables, targets, zone, dialect)
        for name, tables in manifest.definitions.items()
    }
    floors = _floors(conn, list(entities))
    # An entity whose tables are empty (its first load) has no rows to delete before its
    # records' rows are inserted, but those of a record of an entity an earlier batch of
    # the run applied (its version is held by then).
    # (Not for a table two entities of the run share: the other's records fill it too.)
    shared = _shared_tables(entities)
    fresh = {
        name
        for name, entity in entities.items()
        if not shared & {t.name for _, t in entity.tables} and _empty(conn, entity)
    }
    applied, start = _apply_in_sql(conn, location, folder, manifest, targets, zone, dialect, fresh)
    if applied is None:
        applied, start = _apply_records(conn, location, folder, manifest, entities, floors, fresh)
    if manifest.kind == "INIT_EXPORT":
        for name in manifest.definitions:
            if start > floors.get(name, ""):
                _remove_older(conn, entities[name], start)
                _set_floor(conn, name, start, name in floors)
    return applied


def _apply_in_sql(
    conn: Connection,
    location: Location,
    folder: str,
    manifest: RunManifest,
    targets: dict[str, sa.Table],
    zone: tzinfo,
    dialect: TargetDialect,
    fresh: set[str],
) -> tuple[int | None, str]:
    """The run applied set-based (`entitysql`) where the target can: (records applied,
    start), or (None, "") when it declined the run, which is then as if never tried."""
    if not entitysql.suited(dialect, manifest, zone):
        return None, ""
    try:
        with conn.begin_nested():
            return entitysql.apply_run_sql(
                conn, location, folder, manifest, targets, zone, dialect, fresh
            )
    except (entitysql.Declined, sa.exc.DBAPIError) as reason:
        text = " ".join(str(getattr(reason, "orig", None) or reason).split())[:200]
        label = f"{folder}/{manifest.kind}_{manifest.run}"
        logger.info("%s: applied record by record (%s)", label, text)
        return None, ""


def _apply_records(
    conn: Connection,
    location: Location,
    folder: str,
    manifest: RunManifest,
    entities: dict[str, Entity],
    floors: dict[str, str],
    fresh: set[str],
) -> tuple[int, str]:
    """The run applied record by record, in batches; (records applied, start)."""
    applied = 0
    start = manifest.created
    dialect = next(iter(entities.values())).dialect
    tables = [table for entity in entities.values() for _, table in entity.tables]
    grown = _Growth(conn, dialect, [version_table, *tables])
    for file in manifest.files:
        batch: list[Record] = []
        for record in read_records(location, folder, file, entities):
            start = min(start, record.stamp)  # (never later than `created`, by the format)
            batch.append(record)
            if len(batch) >= BATCH_RECORDS:
                applied += _apply(conn, entities, batch, floors, fresh, dialect)
                grown.after(applied)
                batch = []
        if batch:
            applied += _apply(conn, entities, batch, floors, fresh, dialect)
    return applied, start


class _Growth:
    """Refreshes the planner's statistics of the tables a run fills each time the records
    applied double (from BATCH_RECORDS on): log2(n) refreshes keep every lookup by key an
    index seek, so a run's load stays linear in its records."""

    def __init__(self, conn: Connection, dialect: TargetDialect, tables: list[sa.Table]) -> None:
        self.conn, self.dialect, self.tables = conn, dialect, tables
        self.next = BATCH_RECORDS

    def after(self, applied: int) -> None:
        if applied >= self.next:
            self.dialect.refresh_statistics(self.conn, self.tables)
            self.next = 2 * applied


def _shared_tables(entities: dict[str, Entity]) -> set[str]:
    seen: set[str] = set()
    shared: set[str] = set()
    for entity in entities.values():
        for _, table in entity.tables:
            (shared if table.name in seen else seen).add(table.name)
    return shared


def _empty(conn: Connection, entity: Entity) -> bool:
    """Whether none of the entity's tables holds a row (a table-export load into the same
    target may have filled them)."""
    return all(
        conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None
        for _, table in entity.tables
    )


def _floors(conn: Connection, names: list[str]) -> dict[str, str]:
    """Entity -> the start of the newest initial run applied for it."""
    i = initial_table.c
    rows = conn.execute(sa.select(i.entity, i.created).where(i.entity.in_(names)))
    return {row[0]: row[1] for row in rows}


def _set_floor(conn: Connection, name: str, created: str, exists: bool) -> None:
    i = initial_table.c
    if exists:
        conn.execute(initial_table.update().where(i.entity == name).values(created=created))
    else:
        conn.execute(initial_table.insert().values(entity=name, created=created))


def _remove_older(conn: Connection, entity: Entity, since: str) -> None:
    """Remove the entities held from records older than `since` (the start of an initial
    run just applied, which did not hold them), and forget their versions: the run's
    start, now the entity's floor, skips any older record."""
    v = version_table.c
    older = (v.entity == entity.name) & (v.stamp < since)
    stale = sa.select(v.pk, v.key_sha1).where(older, v.pk.is_not(None)).limit(BATCH_RECORDS)
    while found := conn.execute(stale).all():
        gone = [Record(entity.name, since, tuple(json.loads(pk)), True, {}) for pk, _ in found]
        _replace(conn, entity, gone, gone)
        conn.execute(
            version_table.delete().where(
                v.entity == entity.name, v.key_sha1.in_([sha1 for _pk, sha1 in found])
            )
        )
    conn.execute(version_table.delete().where(older))  # rows of versions without their key


def read_records(
    location: Location, folder: str, file: RunFile, entities: dict[str, Entity]
) -> Iterator[Record]:
    where = f"{folder}/{file.name}"
    count = 0
    for lines in record_lines(location, folder, file):
        for line in lines:
            count += 1
            yield _record(line, f"{where}: record {count}", entities)


def _value_refused(
    row: dict[str, Any], converts: dict[str, Convert], schema: TableSchema, where: str
) -> LoadError:
    """The error naming the first column of a row whose value does not convert."""
    for name, value in row.items():
        try:
            converts[name](value)
        except (ValueError, TypeError, ArithmeticError) as error:
            return LoadError(
                f"{where}: {schema.column(name).described(schema.name)}: "
                f"{' '.join(str(error).split())[:200]}",
                REFUSAL_HINT,
            )
    return LoadError(f"{where}: a row of {schema.name!r} does not convert")


def _record(line: bytes, where: str, entities: dict[str, Entity]) -> Record:
    try:
        record = json.loads(line, parse_float=Decimal)
    except (ValueError, RecursionError) as error:
        raise LoadError(f"{where}: not a JSON record ({str(error)[:80]})") from None
    if not isinstance(record, dict):
        raise LoadError(f"{where}: not a JSON object")
    entity = entities.get(record.get("OBJ"))  # type: ignore[arg-type]
    if entity is None:
        raise LoadError(f"{where}: entity {record.get('OBJ')!r} is not defined by its manifest")
    width = len(entity.tables[0][0].root_key)
    key = tuple(record.get(f"PK{i}") for i in range(1, width + 1))
    stamp, data = record.get("TIMESTAMP"), record.get("DATA")
    if (
        not all(isinstance(k, str) for k in key)
        or not isinstance(stamp, str)
        or not isinstance(data, dict)
    ):
        raise LoadError(f"{where}: TIMESTAMP, PK fields and DATA are missing or wrong")
    names = {t.schema.name for t, _ in entity.tables}
    if set(data) != names or not all(isinstance(rows, list) for rows in data.values()):
        raise LoadError(f"{where}: DATA must hold exactly the tables {sorted(names)}")
    _check_key(entity, key, where)  # type: ignore[arg-type]
    return Record(entity.name, stamp, key, record.get("DELETED") is True, data, where)  # type: ignore[arg-type]


def _check_key(entity: Entity, key: tuple[str, ...], where: str) -> None:
    """Refuse PK values the root's key columns cannot hold (an empty one included)."""
    root = entity.tables[0][0]
    converts = entity.converts[root.schema.name]
    for number, (column, value) in enumerate(zip(root.root_key, key, strict=True), start=1):
        try:
            converted = converts[column](value)
        except (ValueError, TypeError) as error:
            raise LoadError(
                f"{where}: PK{number} {value!r} does not fit {column!r}: {error}"
            ) from None
        if converted is None:
            raise LoadError(f"{where}: PK{number} is empty")


def _apply(
    conn: Connection,
    entities: dict[str, Entity],
    batch: list[Record],
    floors: dict[str, str],
    fresh: set[str],
    dialect: TargetDialect,
) -> int:
    """Apply the newest record of each entity key in the batch that is newer than what
    the target holds, and than the start of the newest initial run applied. The rows of
    an entity in `fresh` (none held when the run began) are deleted only where a version
    is held (an earlier batch of the run applied a record of it)."""
    newest: dict[tuple[str, str], Record] = {}
    for record in batch:
        ident = record.ident
        if ident not in newest or record.stamp >= newest[ident].stamp:
            newest[ident] = record
    held = _held(conn, list(newest))
    chosen = [
        r
        for ident, r in newest.items()
        if max(held.get(ident, ""), floors.get(r.entity, "")) < r.stamp
    ]
    by_entity: dict[str, list[Record]] = {}
    for record in chosen:
        by_entity.setdefault(record.entity, []).append(record)
    for name, records in by_entity.items():
        held_only = name in fresh
        stale = [r for r in records if not held_only or r.ident in held]
        _replace(conn, entities[name], records, stale)
    _remember(conn, dialect, held, chosen)
    return len(chosen)


def _replace(conn: Connection, entity: Entity, records: list[Record], stale: list[Record]) -> None:
    """Delete the rows of the entities of `stale` (those the target may hold), then insert
    the rows of `records`."""
    root_key = entity.tables[0][0].root_key
    root_converts = entity.converts[entity.tables[0][0].schema.name]
    keys = [tuple(root_converts[c](v) for c, v in zip(root_key, r.key, strict=True)) for r in stale]
    for described, table in entity.tables:
        if keys:
            entity.dialect.delete_keys(conn, table, described.root_key, keys)
        schema = entity.schemas[described.schema.name]
        converts = entity.converts[schema.name]
        rows = [
            row_values(row, converts, schema, entity.keys[schema.name], r.where)
            for r in records
            if not r.deleted
            for row in r.data[schema.name]
        ]
        if rows:
            try:
                entity.dialect.insert_rows(conn, table, rows)
            except (sa.exc.DBAPIError, sa.exc.StatementError) as error:
                where = records[0].where.rsplit(": record", 1)[0]
                raise refusal(where, schema, error) from None


def row_values(
    row: Any, converts: dict[str, Convert], schema: TableSchema, key: Sequence[str], where: str
) -> dict[str, Any]:
    """A record's row converted; a key column without a value is refused here (a SQLite
    table's INTEGER key is its rowid, which would take a new value for NULL)."""
    table = schema.name
    at = f"{where}: a row of {table!r}"
    if not isinstance(row, dict) or set(row) != set(converts):
        raise LoadError(f"{at} does not hold exactly its columns")
    try:
        converted = {name: converts[name](value) for name, value in row.items()}
    except (ValueError, TypeError, ArithmeticError):
        raise _value_refused(row, converts, schema, where) from None
    for name in key:
        if converted[name] is None:
            raise LoadError(f"{at}: its key column {name!r} is empty")
    return converted


def _held(conn: Connection, idents: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The stamp the target holds for each (entity, key sha1), by entity: `entity = X AND
    key_sha1 IN (…)` seeks the primary key's index on both columns (a tuple IN of pairs
    used it on `entity` alone, scanning every version of the entity per batch)."""
    by_entity: dict[str, list[str]] = {}
    for entity, sha1 in idents:
        by_entity.setdefault(entity, []).append(sha1)
    held: dict[tuple[str, str], str] = {}
    for entity, sha1s in by_entity.items():
        rows = conn.execute(held_versions(entity, sha1s))
        held.update({(entity, row[0]): row[1] for row in rows})
    return held


def held_versions(entity: str, sha1s: list[str]) -> sa.Select[Any]:
    """The versions the target holds of some keys of an entity (key sha1, stamp)."""
    v = version_table.c
    return sa.select(v.key_sha1, v.stamp).where(v.entity == entity, v.key_sha1.in_(sha1s))


def _remember(
    conn: Connection,
    dialect: TargetDialect,
    held: dict[tuple[str, str], str],
    chosen: list[Record],
) -> None:
    """Record the version of each entity applied: the held ones' rows replaced (deleted,
    then inserted with the rest, in bulk: an update per record was a third of the load)."""
    v = version_table.c
    replaced: dict[str, list[str]] = {}
    for record in chosen:
        ident = record.ident
        if ident in held:
            replaced.setdefault(ident[0], []).append(ident[1])
    for entity, sha1s in replaced.items():
        conn.execute(version_table.delete().where(v.entity == entity, v.key_sha1.in_(sha1s)))
    versions = [
        {
            "entity": r.entity,
            "key_sha1": r.ident[1],
            "stamp": r.stamp,
            "pk": r.pk,
        }
        for r in chosen
    ]
    if versions:
        dialect.insert_rows(conn, version_table, versions)
