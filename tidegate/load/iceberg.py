"""Apache Iceberg targets: `[target] url = "iceberg:///<dir>"`, loaded by pyiceberg (the
`iceberg` extra). This module is the warehouse (its catalog, its tables' schemas and the
values they take) and the merge of table exports; iceberg_entities.py applies entity runs,
iceberg_load.py orders a load.

The catalog is pyiceberg's SqlCatalog in `<dir>/catalog.db` (SQLite, no server) with the
tables' files in `<dir>`, unless `[target.iceberg]` names another catalog or warehouse
(REST, S3: any pyiceberg catalog properties); `<dir>` keeps the load lock and the load
history either way. The namespace is `[target] schema`, or `tidegate`. Each exported
table becomes the Iceberg table of the same name, created from the schema the export
carries, its primary key the table's identifier fields; columns the source adds are added.

Exactly once, without transactions across tables: each table's commit sets the table
property `tidegate.position` (the hwm-to of the export it applied) in the same commit as
its rows, so a load killed between two tables' commits resumes each table from its own
position and applies nothing twice. Once every table of a folder is committed, the
namespace property `tidegate.last-table-export` records the folder, which the chain check
of the next load starts from (loader.pending_folders). Tables are made without pyiceberg's
commit retries, which would replay a commit on another writer's snapshot.

Rows: a table exported whole replaces the table (an overwrite); otherwise the rows held of
the exported keys are deleted and the exported rows appended, and the deleted keys deleted,
all in the table's one commit. (pyiceberg's own `upsert` compares every matched row in
Python and fails on a table whose schema has grown.) pyiceberg rewrites the data files that
hold a changed or deleted row (copy-on-write), so a change costs the files it touches.

Values are converted from the export's text by Arrow's casts, which refuse what they
would change (a decimal with more digits than its scale, an integer out of range), and
types Iceberg cannot hold exactly are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from datetime import time
from typing import Any

import sqlalchemy.orm  # noqa: F401  (see _IMPORTING)

from tidegate.config import TargetConfig
from tidegate.errors import LoadError, TargetError, TidegateError
from tidegate.formats.manifest import Manifest, TableEntry
from tidegate.formats.tableschema import ColumnSchema, TableSchema, base_type, type_size
from tidegate.load.archive import ExportArchive
from tidegate.load.iceberg_files import NewRows
from tidegate.load.inventory import TableFolder
from tidegate.load.target import Target
from tidegate.prefetch import prefetched

log = logging.getLogger(__name__)

# Imports of modules that import each other, made by two threads at once, can leave one
# of them a half-made module ("partially initialized module 'sqlalchemy.orm.exc'", seen
# while `serve`-like threads exported and loaded). pyiceberg's SQL catalog imports
# SQLAlchemy's ORM, which SQLAlchemy's core also loads lazily from whatever thread needs
# it: imported with this module, before any thread starts, it is whole for all of them.
# pyiceberg is imported on first use (it is an extra), one thread at a time.
_IMPORTING = threading.Lock()

SCHEME = "iceberg"
HISTORY_FILE = "load-history.db"  # the warehouse's load runs, in its directory
DEFAULT_NAMESPACE = "tidegate"  # when [target] schema is empty
POSITION = "tidegate.position"  # table property: hwm-to of the last export applied to it
EXPORT = "tidegate.export"  # table property: that export's folder
LAST_EXPORT = "tidegate.last-table-export"  # namespace property: {"folder", "position"}
# pyiceberg replays a commit that lost a race on the new snapshot (deletes and appends
# again, with the position it read before): a load racing another, from another machine
# through a shared catalog, could apply an export twice. Without retries it fails instead,
# and run again it starts from the position the winner committed.
RETRIES = "commit.retry.num-retries"
NO_RETRY = {RETRIES: "0"}
BATCH_ROWS = 100_000  # rows merged at a time (a batch is held in memory, with its key filter)
# Types Iceberg holds exactly, as Arrow types the export's text is cast to.
EXACT = frozenset(
    {"boolean", "smallint", "integer", "bigint", "float", "numeric", "date", "timestamp"}
    | {"timestamptz", "time", "binary", "text", "uuid", "json"}
)


def is_iceberg(url: str) -> bool:
    return url.split("://", 1)[0] == SCHEME


def warehouse_directory(url: str) -> str:
    """The local directory of an `iceberg:///<dir>` URL (the lock's, and by default the
    catalog's and the tables')."""
    scheme, _, rest = url.partition("://")
    directory = rest[1:] if rest.startswith("/") else rest
    if scheme != SCHEME or not rest.startswith("/") or not directory.startswith("/"):
        raise TargetError(
            f"[target] url: {url!r} is not an Iceberg warehouse directory",
            'write iceberg:/// and an absolute directory: "iceberg:////srv/warehouse"',
        )
    return directory


def load_history(url: str) -> Target:
    """Where the loads into a warehouse are recorded (`tidegate runs`, the dashboard's
    freshness): a SQLite file in its directory, beside the lock, kept as a SQL target keeps
    its own. (Read without the catalog, which may be a server.)"""
    return Target(f"sqlite:///{warehouse_directory(url)}/{HISTORY_FILE}")


class IcebergTarget:
    """An Iceberg warehouse: its catalog, and a local directory that holds the load lock
    (and, unless `[target.iceberg]` says otherwise, the SQL catalog and the data)."""

    def __init__(self, url: str, settings: TargetConfig | None = None) -> None:
        settings = settings or TargetConfig(url=url)
        self.url = url
        self.safe_url = url  # no password in an iceberg:/// URL
        self.directory = directory = warehouse_directory(url)
        self.history = load_history(url)
        self.namespace = settings.schema_ or DEFAULT_NAMESPACE
        properties = {
            "type": "sql",
            "uri": f"sqlite:///{directory}/catalog.db",
            "warehouse": f"file://{directory}",
            **settings.iceberg,
        }
        try:
            with _IMPORTING:
                from pyiceberg.catalog import load_catalog
        except ImportError:
            raise TargetError(
                "[target] url: an Iceberg target needs pyiceberg",
                "pip install 'tidegate[iceberg]'",
            ) from None
        os.makedirs(directory, exist_ok=True)
        try:
            self.catalog = load_catalog("tidegate", **properties)
        except Exception as error:  # any: a catalog that cannot be made is a setting's fault
            raise self._failed(error) from None

    @contextlib.contextmanager
    def catalog_errors(self) -> Iterator[None]:
        """The catalog's and its storage's own errors as one line naming the target: a
        REST catalog that does not answer, a bucket that does not exist, a missing
        library. (tidegate's own errors pass as they are.)"""
        try:
            yield
        except TidegateError:
            raise
        except Exception as error:
            if not _catalog_error(error):
                raise
            raise self._failed(error) from None

    def _failed(self, error: Exception) -> TargetError:
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        return TargetError(
            f"target {self.safe_url}: {reason}",
            "check [target.iceberg] (catalog type and uri, warehouse, credentials) and that "
            "the catalog and its storage answer",
        )

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One load at a time per warehouse: a lock on a file in its directory."""
        with open(os.path.join(self.directory, ".tidegate-load.lock"), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TargetError(
                    f"target {self.safe_url}: another load into it is running; not started",
                    "wait for it to finish, then run load again",
                ) from None
            yield

    # --- where it stands --------------------------------------------------------------

    def last_table_export(self) -> tuple[str, int] | None:
        """The table export applied last, whole, and its hwm-to."""
        properties = self.namespace_properties()
        if LAST_EXPORT not in properties:
            return None
        last = json.loads(properties[LAST_EXPORT])
        return str(last["folder"]), int(last["position"])

    def create_namespace(self) -> None:
        self.catalog.create_namespace_if_not_exists(self.namespace)

    def namespace_properties(self) -> dict[str, str]:
        """The namespace's properties (none before it exists: nothing loaded yet)."""
        if not self._namespace_exists():
            return {}
        return dict(self.catalog.load_namespace_properties(self.namespace))

    def update_namespace_properties(self, updates: dict[str, str]) -> None:
        self.catalog.update_namespace_properties(self.namespace, updates=updates)

    def _namespace_exists(self) -> bool:
        return (self.namespace,) in self.catalog.list_namespaces()

    def ping(self) -> None:
        """Read the catalog (a readiness probe, as `Target.ping`).

        Raises:
            TargetError: the catalog cannot be read (one line).
        """
        with self.catalog_errors():
            self._namespace_exists()

    def dispose(self) -> None:
        """Close the load history's connections (as `Target.dispose`, for callers of
        either)."""
        self.history.dispose()

    # --- applying a table export --------------------------------------------------------

    def apply_folder(self, archive: ExportArchive, manifest: Manifest, folder: TableFolder) -> int:
        """Merge every table of the export (each its own commit, with its position); the
        rows written and deleted. Tables already at the export's position are skipped.

        Every table's changes are staged (its data files written) before the first commit,
        so a value refused in any table leaves every table as it was (the files written
        then belong to no table; a lake's orphan-file removal takes them)."""
        position = manifest.hwm_to.audit_key
        schemas = [files.schema for files in archive.tables]
        for schema in schemas:
            refuse_inexact(schema)
        staged = []
        with warnings.catch_warnings():
            # pyiceberg warns when an overwrite finds nothing to replace: expected here
            # (a table exported whole, loaded for the first time)
            warnings.filterwarnings("ignore", "Delete operation did not match", UserWarning)
            for files, entry in zip(archive.tables, manifest.tables, strict=True):
                table = self.prepared(files.schema)
                if int(table.properties.get(POSITION, "0")) >= position:
                    log.info("%s: %s already applied", folder.folder, files.schema.name)
                    continue
                staged.append(self._staged(archive, files, entry, table, folder.folder, position))
        for transaction, _count in staged:
            self._commit(transaction)
        self.update_namespace_properties(
            {LAST_EXPORT: json.dumps({"folder": folder.folder, "position": position})}
        )
        return sum(count for _transaction, count in staged)

    def _commit(self, transaction: Any) -> None:
        """One table's commit: its rows with its position."""
        transaction.commit_transaction()

    def _staged(
        self,
        archive: ExportArchive,
        files: Any,
        entry: TableEntry,
        table: Any,
        folder: str,
        position: int,
    ) -> tuple[Any, int]:
        """One table's transaction, every change made and its position set, not yet
        committed; and the rows it writes and deletes."""
        schema: TableSchema = files.schema
        if not schema.primary_key and not entry.whole:
            raise LoadError(
                f"{archive.where}: table {schema.name!r} has no key, and the export does not "
                "hold all of it: its rows cannot be merged",
                "export it again: tidegate exports a table without a key whole",
            )
        arrow_schema = table.schema().as_arrow()
        key = list(schema.primary_key)
        transaction = table.transaction()
        if entry.whole:  # it replaces all the table held
            from pyiceberg.expressions import AlwaysTrue

            transaction.delete(AlwaysTrue())
        new_rows = NewRows(transaction, table.io)
        rows = 0
        # Arrow inflates and parses the next batch in a thread while this one is written.
        for batch in prefetched(_batches(archive, files.rows, schema, arrow_schema), depth=1):
            rows += batch.num_rows
            if not entry.whole:  # replaced by key: the rows held of these keys go
                transaction.delete(key_filter(batch.select(key), key, arrow_schema))
            new_rows.write(batch)
        if rows != entry.rows:
            raise LoadError(
                f"{archive.where}/{files.rows}: {rows} record(s), the manifest says {entry.rows}",
                "the export was altered or cut short: export it again",
            )
        new_rows.commit()
        deleted = 0
        if entry.deleted:
            for keys in _batches(archive, files.deleted, _key_schema(schema), None):
                transaction.delete(key_filter(keys, key, arrow_schema))
                deleted += keys.num_rows
        transaction.set_properties({POSITION: str(position), EXPORT: folder})
        return transaction, rows + deleted

    def prepared(self, schema: TableSchema) -> Any:
        """The Iceberg table of an export's table: created, or given the columns the
        source added."""
        from pyiceberg.exceptions import NoSuchTableError

        identifier = (self.namespace, schema.name)
        wanted = iceberg_schema(schema)
        try:
            table = self.catalog.load_table(identifier)
        except NoSuchTableError:
            return self.catalog.create_table(identifier, wanted, properties=NO_RETRY)
        if table.properties.get(RETRIES) != NO_RETRY[RETRIES]:
            table = table.transaction().set_properties(NO_RETRY).commit_transaction()
        held = {field.name: field.field_type for field in table.schema().fields}
        added = [field for field in wanted.fields if field.name not in held]
        widened = [f for f in wanted.fields if f.name in held and held[f.name] != f.field_type]
        if added or widened:
            from pyiceberg.exceptions import ValidationError

            try:
                with table.update_schema() as update:
                    for field in added:
                        update.add_column(field.name, field.field_type)
                    for field in widened:  # int to long, float to double, wider decimals
                        update.update_column(field.name, field_type=field.field_type)
            except (ValidationError, ValueError) as error:
                raise LoadError(
                    f"table {schema.name!r}: its Iceberg table cannot take the source's new "
                    f"shape: {error}",
                    "Iceberg widens int to long, float to double and decimals' precision "
                    "only: load the table into a new warehouse, or drop it there first",
                ) from None
            table = self.catalog.load_table(identifier)
        return table

    def read(self, name: str) -> Any:
        """A table's rows, as an Arrow table (for checks and tests)."""
        return self.catalog.load_table((self.namespace, name)).scan().to_arrow()


def _catalog_error(error: Exception) -> bool:
    """Whether an error is the catalog's or its storage's (pyiceberg's, the REST client's,
    pyarrow's file systems', the SQL catalog's), not a fault of tidegate's own."""
    if isinstance(error, OSError | ImportError):
        return True
    library = type(error).__module__.split(".", 1)[0]
    return library in {"pyiceberg", "requests", "urllib3", "sqlalchemy", "pyarrow", "botocore"}


# --- types -----------------------------------------------------------------------------


def refuse_inexact(schema: TableSchema) -> None:
    """Raise, naming the column, for a type Iceberg cannot hold exactly."""
    for column in schema.columns:
        kind = base_type(column.type)
        why = ""
        if kind not in EXACT:
            why = "Iceberg has no type that holds it exactly"
        elif kind == "numeric" and (not type_size(column.type) or type_size(column.type)[0] > 38):
            why = "Iceberg's decimals need a precision of at most 38"
        if why:
            raise LoadError(
                f"{column.described(schema.name)}: cannot be loaded into Iceberg: {why}",
                "leave the table out of this target ([tables] exclude), or load it into a "
                "SQL target",
            )


def iceberg_schema(schema: TableSchema) -> Any:
    """The Iceberg schema of an export's table: its key as identifier fields (required)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    fields = [
        NestedField(
            field_id=number,
            name=column.name,
            field_type=_iceberg_type(column),
            required=column.name in schema.primary_key,
        )
        for number, column in enumerate(schema.columns, start=1)
    ]
    keys = [number for number, c in enumerate(schema.columns, 1) if c.name in schema.primary_key]
    return Schema(*fields, identifier_field_ids=keys)


def _iceberg_type(column: ColumnSchema) -> Any:
    from pyiceberg import types

    kind = base_type(column.type)
    if kind == "numeric":
        precision, scale = type_size(column.type)
        return types.DecimalType(precision, scale)
    simple = {
        "boolean": types.BooleanType(),
        "smallint": types.IntegerType(),
        "integer": types.IntegerType(),
        "bigint": types.LongType(),
        "float": types.DoubleType(),
        "date": types.DateType(),
        "timestamp": types.TimestampType(),
        "timestamptz": types.TimestamptzType(),
        "time": types.TimeType(),
        "binary": types.BinaryType(),
    }
    return simple.get(kind, types.StringType())  # text, and uuid and json as their text


def _key_schema(schema: TableSchema) -> TableSchema:
    key = tuple(schema.column(name) for name in schema.primary_key)
    return TableSchema(schema.name, key, schema.primary_key)


# --- values ----------------------------------------------------------------------------


def _batches(
    archive: ExportArchive, member: str, schema: TableSchema, arrow_schema: Any
) -> Iterator[Any]:
    """The member's records as Arrow tables of the Iceberg columns' types, BATCH_ROWS at a
    time; a value a column cannot hold exactly is refused, naming the column."""
    import pyarrow as pa

    columns = [c.name for c in schema.columns]
    pending: list[Any] = []
    count = 0
    for batch in archive.batches(member, columns):
        pending.append(batch)
        count += batch.num_rows
        if count >= BATCH_ROWS:
            yield _typed(pa.Table.from_batches(pending), schema, arrow_schema, archive, member)
            pending, count = [], 0
    if pending:
        yield _typed(pa.Table.from_batches(pending), schema, arrow_schema, archive, member)


def _typed(strings: Any, schema: TableSchema, arrow_schema: Any, archive: Any, member: str) -> Any:
    import pyarrow as pa

    arrays = []
    for column in schema.columns:
        try:
            arrays.append(_typed_array(strings.column(column.name), column))
        except (pa.ArrowInvalid, ValueError) as error:
            raise LoadError(
                f"{archive.where}/{member}: {column.described(schema.name)}: a value "
                f"Iceberg cannot hold as it is: {error}",
                "load this table into a SQL target, or leave it out of this one",
            ) from None
    typed = pa.Table.from_arrays(arrays, names=[c.name for c in schema.columns])
    if arrow_schema is None:
        return typed
    try:
        return typed.cast(pa.schema([arrow_schema.field(c.name) for c in schema.columns]))
    except (pa.ArrowInvalid, ValueError) as error:  # a NULL in a key, a value too wide
        raise LoadError(
            f"{archive.where}/{member}: table {schema.name!r}: rows its Iceberg table cannot "
            f"hold: {error}",
            "load this table into a SQL target, or leave it out of this one",
        ) from None


def _typed_array(values: Any, column: ColumnSchema) -> Any:
    """One column's export text as its Iceberg type's Arrow array (NULL stays NULL)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = base_type(column.type)
    if kind in ("text", "uuid", "json"):
        return values
    if kind == "binary":
        return pa.array(
            [None if v is None else bytes.fromhex(v) for v in values.to_pylist()], pa.binary()
        )
    if kind == "time":  # Arrow cannot cast text to a time of day
        times = [None if v is None else _time(v) for v in values.to_pylist()]
        return pa.array(times, pa.time64("us"))
    if kind == "timestamptz":  # "… +00": UTC, as Arrow reads "Z"
        values = pc.replace_substring_regex(values, pattern=r"\+00$", replacement="Z")
    target: dict[str, Any] = {
        "boolean": pa.bool_(),
        "smallint": pa.int32(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "float": pa.float64(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
    }
    if kind == "numeric":
        precision, scale = type_size(column.type)
        return pc.cast(values, pa.decimal128(precision, scale))
    return pc.cast(values, target[kind])


def _time(text: str) -> time:
    if text.startswith("24:"):
        raise ValueError(f"{text!r}: Iceberg's time of day ends before 24:00:00")
    return time.fromisoformat(text)


def key_filter(keys: Any, key: Sequence[str], arrow_schema: Any) -> Any:
    """A row filter matching the deleted keys of one batch."""
    import pyarrow as pa
    from pyiceberg import expressions

    made: Any = expressions  # its predicates are pydantic models, which typing misreads
    typed = keys.cast(pa.schema([arrow_schema.field(k) for k in key]))
    if len(key) == 1:
        return made.In(key[0], set(typed.column(key[0]).to_pylist()))
    rows = typed.to_pylist()
    matches = [made.And(*(made.EqualTo(k, row[k]) for k in key)) for row in rows]
    return matches[0] if len(matches) == 1 else made.Or(*matches)
