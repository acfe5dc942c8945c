"""The Iceberg REST catalog server of the tests (tests/load/iceberg_rest.py) is real: over
HTTP, pyiceberg's REST client makes a namespace and a table with identifier fields,
appends, commits table properties with an append in one transaction, and reads back; and
of two transactions based on the same snapshot, the server refuses the second commit, as
the REST spec says (409, pyiceberg's CommitFailedException)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

pytest.importorskip("pyiceberg")
import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

# The server's fixture, rest_catalog_properties (a plugin, so that pytest finds it by name).
pytest_plugins = ["tests.load.iceberg_rest"]

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "name", StringType(), required=False),
    identifier_field_ids=[1],
)
ARROW_SCHEMA = pa.schema(
    [pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())]
)
_namespaces = itertools.count(1)


def _rows(*ids: int) -> pa.Table:
    return pa.table({"id": list(ids), "name": [f"row {i}" for i in ids]}, schema=ARROW_SCHEMA)


def _catalog(properties: dict[str, str]) -> tuple[Catalog, str]:
    """A client of the session's server, and a namespace of this test's own."""
    catalog = load_catalog("test", **properties)
    namespace = f"ns{next(_namespaces)}"
    catalog.create_namespace(namespace, properties={"owner": "tests"})
    return catalog, namespace


def _ids(table: Any) -> list[int]:
    return sorted(table.scan().to_arrow()["id"].to_pylist())


def test_namespace_table_append_and_transaction(rest_catalog_properties: dict[str, str]) -> None:
    catalog, namespace = _catalog(rest_catalog_properties)
    assert (namespace,) in catalog.list_namespaces()
    assert catalog.namespace_exists(namespace)
    assert catalog.load_namespace_properties(namespace)["owner"] == "tests"
    catalog.update_namespace_properties(namespace, updates={"position": "1"})
    assert catalog.load_namespace_properties(namespace)["position"] == "1"

    identifier = (namespace, "items")
    table = catalog.create_table(identifier, SCHEMA)
    assert catalog.table_exists(identifier)
    assert catalog.list_tables(namespace) == [identifier]
    table.append(_rows(1, 2))

    # Properties and rows in one commit, as tidegate commits a table's position.
    with table.transaction() as transaction:
        transaction.append(_rows(3))
        transaction.set_properties({"tidegate.position": "3"})

    # A new client, so nothing is read from the first one's memory.
    loaded = load_catalog("other", **rest_catalog_properties).load_table(identifier)
    assert loaded.schema().identifier_field_ids == [1]
    assert loaded.properties["tidegate.position"] == "3"
    assert _ids(loaded) == [1, 2, 3]
    assert len(loaded.snapshots()) == 2  # the append, then the transaction's one commit

    catalog.drop_table(identifier)
    assert not catalog.table_exists(identifier)


def test_concurrent_commit_is_refused(rest_catalog_properties: dict[str, str]) -> None:
    catalog, namespace = _catalog(rest_catalog_properties)
    identifier = (namespace, "items")
    # No retries: pyiceberg would otherwise take the server's refusal, rebase the stale
    # transaction on the new snapshot and commit again (the next test).
    catalog.create_table(identifier, SCHEMA, properties={"commit.retry.num-retries": "0"})
    first = catalog.load_table(identifier).transaction()
    second = catalog.load_table(identifier).transaction()  # the same (empty) snapshot
    first.append(_rows(1))
    first.set_properties({"tidegate.position": "1"})
    second.append(_rows(2))
    second.set_properties({"tidegate.position": "2"})

    first.commit_transaction()
    with pytest.raises(CommitFailedException):
        second.commit_transaction()

    table = catalog.load_table(identifier)
    assert _ids(table) == [1]
    assert table.properties["tidegate.position"] == "1"


def test_stale_append_is_retried_by_default(
    rest_catalog_properties: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """pyiceberg's default (4 retries): the server refuses the stale commit, pyiceberg
    rebases it on the new snapshot and commits again, and the caller is not told."""
    catalog, namespace = _catalog(rest_catalog_properties)
    identifier = (namespace, "items")
    catalog.create_table(identifier, SCHEMA)
    first = catalog.load_table(identifier)
    second = catalog.load_table(identifier)
    first.append(_rows(1))
    second.append(_rows(2))
    assert "Commit failed due to a concurrent update, retrying" in caplog.text  # the refusal
    assert _ids(catalog.load_table(identifier)) == [1, 2]
