"""tidegate's own tables in the source database, as SQLAlchemy Core tables.

Every table is named ``tidegate_*``; table selection never exports them. Times are stored
as integer microseconds since 1970 UTC, so that every dialect compares and stores them
exactly and no session time zone can shift them.

    tidegate_meta      key/value facts about the installation (schema version)
    tidegate_counter   named counters; "audit_key" hands out audit keys, one per claim
    tidegate_capture   the tables with capture installed, with their key columns
    tidegate_shape     each captured table's shape when an export run last looked, and
                       what the next export reports of a change to it
    tidegate_pending   changes written by the capture triggers, not yet claimed
    tidegate_change    claimed changes, each stamped with the audit key of its claim
    tidegate_tick      one row per claim: audit key, time, number of changes
    tidegate_export    one row per table-export folder: its chain position and state
    tidegate_entity    one row per entity ever enabled: its export control record
    tidegate_entity_pending  root keys queued by entity capture, not yet claimed
    tidegate_entity_queue    claimed root keys, until an ongoing export has written them
    tidegate_run       run history of every job
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.db import Database

SCHEMA_VERSION = "3"

metadata = sa.MetaData()

# SQLite gives autoincrement only to an INTEGER PRIMARY KEY; AUTOINCREMENT also stops it
# from reusing the id of a deleted row, which claimed change ids rely on.
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

meta = sa.Table(
    "tidegate_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

counter = sa.Table(
    "tidegate_counter",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

capture = sa.Table(
    "tidegate_capture",
    metadata,
    sa.Column("table_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("table_name", sa.String(255), nullable=False, unique=True),
    sa.Column("key_columns", sa.Text, nullable=False),  # JSON array of column names
    sa.Column("installed_us", sa.BigInteger, nullable=False),
    # The table export that last exported the whole table; NULL until one has, so the next
    # export includes it whole (a table added to [tables] include later).
    sa.Column("snapshot_export", sa.Integer),
)

shape = sa.Table(
    "tidegate_shape",
    metadata,
    sa.Column("table_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("fingerprint", sa.String(40), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON: capture/shapes.py `Shape.detail`
    # What the next published export reports in its manifest: "migrated", "whole" or
    # "ended" (tables/drift.py); NULL once reported.
    sa.Column("announce", sa.String(16)),
)

pending = sa.Table(
    "tidegate_pending",
    metadata,
    sa.Column("change_id", _AutoId, primary_key=True, autoincrement=True),
    sa.Column("table_id", sa.Integer, nullable=False),
    sa.Column("op", sa.String(1), nullable=False),
    sa.Column("pk", sa.Text, nullable=False),  # JSON array of key values
    sa.Column("captured_us", sa.BigInteger, nullable=False),
    # The change's data time: the row's [tables] time_columns value, else captured_us.
    sa.Column("data_us", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

change = sa.Table(
    "tidegate_change",
    metadata,
    sa.Column("change_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("audit_key", sa.BigInteger, nullable=False, index=True),
    sa.Column("table_id", sa.Integer, nullable=False),
    sa.Column("op", sa.String(1), nullable=False),
    sa.Column("pk", sa.Text, nullable=False),
    sa.Column("captured_us", sa.BigInteger, nullable=False),
    sa.Column("data_us", sa.BigInteger, nullable=False),
)

tick = sa.Table(
    "tidegate_tick",
    metadata,
    sa.Column("audit_key", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("queue", sa.String(16), nullable=False),  # "tables" or "entities"
    sa.Column("claimed_us", sa.BigInteger, nullable=False),
    sa.Column("changes", sa.BigInteger, nullable=False),
)

entity = sa.Table(
    "tidegate_entity",
    metadata,
    sa.Column("entity_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("ongoing", sa.Boolean, nullable=False),
    sa.Column("initial_status", sa.String(16), nullable=False),
    sa.Column("initial_run", sa.Integer),
    sa.Column("tables", sa.Text, nullable=False),  # JSON: root first, then children
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

entity_pending = sa.Table(
    "tidegate_entity_pending",
    metadata,
    sa.Column("queue_id", _AutoId, primary_key=True, autoincrement=True),
    sa.Column("entity_id", sa.Integer, nullable=False),
    sa.Column("pk", sa.Text, nullable=False),  # JSON array of the root key
    sa.Column("captured_us", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

entity_queue = sa.Table(
    "tidegate_entity_queue",
    metadata,
    sa.Column("queue_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("audit_key", sa.BigInteger, nullable=False, index=True),
    sa.Column("entity_id", sa.Integer, nullable=False),
    sa.Column("pk", sa.Text, nullable=False),
    sa.Column("captured_us", sa.BigInteger, nullable=False),
)

export = sa.Table(
    "tidegate_export",
    metadata,
    sa.Column("export_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(80), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),  # planned | published
    sa.Column("stream", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # snapshot | incremental
    sa.Column("restart", sa.String(16)),  # beginning | from | reexport
    sa.Column("since_us", sa.BigInteger),
    sa.Column("hwm_from", sa.BigInteger, nullable=False),
    sa.Column("hwm_from_us", sa.BigInteger, nullable=False),
    sa.Column("hwm_to", sa.BigInteger, nullable=False),
    sa.Column("hwm_to_us", sa.BigInteger, nullable=False),
    sa.Column("min_data_us", sa.BigInteger, nullable=False),
    sa.Column("max_data_us", sa.BigInteger, nullable=False),
    sa.Column("name_data_us", sa.BigInteger, nullable=False),
    sa.Column("window_lo_us", sa.BigInteger),  # re-export: data-time window of this folder
    sa.Column("window_hi_us", sa.BigInteger),
    sa.Column("reexport_until_us", sa.BigInteger),
    sa.Column("snapshot_tables", sa.Text, nullable=False),  # JSON array of table names
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("published_us", sa.BigInteger),
    sa.Column("row_count", sa.BigInteger, nullable=False, default=0),
    sa.Column("byte_count", sa.BigInteger, nullable=False, default=0),
)

run = sa.Table(
    "tidegate_run",
    metadata,
    sa.Column("job", sa.String(16), primary_key=True),
    sa.Column("run_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_us", sa.BigInteger, nullable=False),
    sa.Column("ended_us", sa.BigInteger),
    sa.Column("row_count", sa.BigInteger, nullable=False, default=0),
    sa.Column("file_count", sa.BigInteger, nullable=False, default=0),
    sa.Column("byte_count", sa.BigInteger, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=False, default=""),
)

TABLE_NAMES = tuple(table.name for table in metadata.sorted_tables)


def bind(db: Database, conn: Connection) -> Connection:
    """Point the schema-less tables above at the database's schema (PostgreSQL)."""
    if db.schema:
        return conn.execution_options(schema_translate_map={None: db.schema})
    return conn


def create(db: Database, conn: Connection) -> bool:
    """Create the control tables that are missing; seed the counter and schema version.

    Returns:
        True when the tables were created now, False when they were already there.
    """
    conn = bind(db, conn)
    existed = sa.inspect(conn).has_table(meta.name, schema=db.schema)
    metadata.create_all(conn, checkfirst=True)
    if not existed:
        conn.execute(meta.insert().values(name="schema_version", value=SCHEMA_VERSION))
        conn.execute(counter.insert().values(name="audit_key", value=0))
    return not existed


def drop(db: Database, conn: Connection) -> None:
    """Drop every control table that exists."""
    metadata.drop_all(bind(db, conn), checkfirst=True)


def installed(db: Database, conn: Connection) -> bool:
    """Whether `init` has created the control tables."""
    return sa.inspect(conn).has_table(meta.name, schema=db.schema)


def installed_version(db: Database, conn: Connection) -> str | None:
    """The schema version of the installed control tables; None when not installed."""
    if not installed(db, conn):
        return None
    return meta_value(db, conn, "schema_version")


def meta_value(db: Database, conn: Connection, name: str) -> str | None:
    """A fact of `tidegate_meta`; None when it is not recorded."""
    found = bind(db, conn).execute(sa.select(meta.c.value).where(meta.c.name == name)).scalar()
    return None if found is None else str(found)


def set_meta(db: Database, conn: Connection, name: str, value: str) -> None:
    """Record a fact of `tidegate_meta`, replacing the one recorded."""
    conn = bind(db, conn)
    updated = conn.execute(meta.update().where(meta.c.name == name).values(value=value))
    if not updated.rowcount:
        conn.execute(meta.insert().values(name=name, value=value))
