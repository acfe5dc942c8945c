"""What every target's way of loading a table member shares: reading its records, staging
them as text in a temporary table, counting them against the manifest, and naming the
member in any error.

Each target (`tidegate.load.targets`) loads members its own fastest way; these are the
parts they have in common.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidegate.errors import LoadError
from tidegate.formats.tableschema import ColumnSchema, TableSchema
from tidegate.load.archive import ExportArchive, csv_error

BATCH_ROWS = 10_000


def counted(
    archive: ExportArchive,
    member: str,
    expected: int,
    load: Callable[[], int],
    schema: TableSchema | None = None,
) -> None:
    """Run a bulk load; its row count must be the manifest's. A database error (a value
    its column cannot hold) names the member, and the table and column when it can."""
    where = f"{archive.where}/{member}"
    try:
        count = load()
    except (UnicodeDecodeError, csv.Error) as error:
        raise csv_error(where, error) from None
    except LoadError:
        raise
    except Exception as error:  # the database's, or the driver's own
        raise refusal(where, schema, error) from None
    if count != expected:
        raise LoadError(f"{where}: {count} records, its manifest says {expected}")


REFUSAL_HINT = (
    "the target's column cannot hold this value of the source: load into a target that "
    "holds it (docs/types.md), or change the value or the column in the source"
)


def refusal(
    where: str,
    schema: TableSchema | None,
    error: BaseException,
    column: ColumnSchema | None = None,
) -> LoadError:
    """One line for a value the target refused: where, the table and the column (given,
    or named by the database's message) with its type, and the database's reason,
    without the statement."""
    text = str(getattr(error, "orig", None) or error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    reason = " ".join(first.split())
    if len(reason) > 200:
        reason = reason[:200] + "…"
    if column is None and schema is not None:
        column = named_column(text, schema)
    if schema is not None and column is not None:
        return LoadError(f"{where}: {column.described(schema.name)}: {reason}", REFUSAL_HINT)
    if schema is not None:
        return LoadError(f"{where}: table {schema.name!r}: {reason}", REFUSAL_HINT)
    return LoadError(f"{where}: {reason}", REFUSAL_HINT)


def named_column(text: str, schema: TableSchema) -> ColumnSchema | None:
    """The column of the table a database's message names (PostgreSQL's `column c`,
    MariaDB's `for column 'c'`, `Column 'c'` or `` `t`.`c` ``), if it names exactly one."""
    found = [
        column
        for column in schema.columns
        if re.search(
            rf"(?i:column) (?:[`'\"]{re.escape(column.name)}[`'\"]|{re.escape(column.name)}:)",
            text,
        )
        or f"`.`{column.name}`" in text
    ]
    return found[0] if len(found) == 1 else None


def records(
    archive: ExportArchive, member: str, columns: Sequence[str], hexed: Sequence[int] = ()
) -> Iterator[list[Any]]:
    """A member's records after its header (checked against `columns`): None for NULL,
    "" for the empty string, the hex at positions `hexed` turned into bytes."""
    rows = archive.rows(member, columns)
    if not hexed:
        return rows
    return _unhexed(rows, hexed, f"{archive.where}/{member}")


def _unhexed(rows: Iterator[list[Any]], hexed: Sequence[int], where: str) -> Iterator[list[Any]]:
    for number, record in enumerate(rows, start=1):
        for index in hexed:
            try:
                if record[index] is not None:
                    record[index] = bytes.fromhex(record[index])
            except ValueError:
                raise LoadError(
                    f"{where}: record {number}: not hex: {record[index][:40]!r}"
                ) from None
        yield record


def new_stage(conn: Connection, columns: Sequence[tuple[str, Any]]) -> sa.Table:
    """An empty temporary table `tidegate_stage` of (name, type) columns."""
    stage = sa.Table(
        "tidegate_stage",
        sa.MetaData(),
        *[sa.Column(name, kind) for name, kind in columns],
        prefixes=["TEMPORARY"],
    )
    stage.drop(conn, checkfirst=True)
    stage.create(conn)
    return stage


def insert_records(
    conn: Connection, stage: sa.Table, archive: ExportArchive, member: str, columns: Sequence[str]
) -> int:
    """The member's CSV parsed here and its fields inserted into the stage as they are
    (hex turned into bytes for a binary staging column); the number of records."""
    hexed = [i for i, c in enumerate(columns) if isinstance(stage.c[c].type, sa.LargeBinary)]
    count, batch = 0, []
    for record in records(archive, member, columns, hexed):
        batch.append(dict(zip(columns, record, strict=True)))
        if len(batch) >= BATCH_ROWS:
            conn.execute(stage.insert(), batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(stage.insert(), batch)
        count += len(batch)
    return count


def key_columns(table: sa.Table, schema: TableSchema) -> sa.ColumnElement[Any]:
    """The target table's key, one column or a tuple of them, for `IN (SELECT …)`."""
    key = [table.c[k] for k in schema.primary_key]
    return key[0] if len(key) == 1 else sa.tuple_(*key)


def on_conflict(insert: Any, columns: Sequence[str], key: Sequence[str]) -> Any:
    """An INSERT (SQLite's, PostgreSQL's or DuckDB's) that updates a row whose key exists:
    every column but the key, or nothing when the key is all there is."""
    others = [c for c in columns if c not in key]
    if not others:
        return insert.on_conflict_do_nothing(index_elements=list(key))
    return insert.on_conflict_do_update(
        index_elements=list(key), set_={c: insert.excluded[c] for c in others}
    )
