"""The matrix for a test session: each source prepared once (its catalog created and
exported), each combination of source, target and export kind loaded once.

The first test to ask computes every combination the session selected, in threads. Each
source's catalog is split into shards of SHARD_UNITS units, each shard a source database
of its own (tidegate reads every table of a source each time it looks for entities, so a
source of many tables costs more per unit); the shards are prepared side by side, and
each is loaded into every target as soon as it is ready.

With TIDEGATE_TYPE_MATRIX=<file> set, the session writes every cell it judged, and how
each value was written, to that JSON file (scripts/type_matrix.py makes docs/types.md of
it).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import sqlalchemy as sa

from tests.conformance import mysql_catalog, pg_catalog, sqlite_catalog
from tests.conformance.catalog import Catalog
from tests.conformance.known_defects import KNOWN_DEFECTS
from tests.conformance.loads import load_cells
from tests.conformance.outcomes import Cell
from tests.conformance.report import results_document
from tests.conformance.sources import PreparedSource, prepare
from tests.conftest import Source, _mysql_source, _pg_source, _sqlite_source
from tests.load.conftest import TargetDb, make_target

CATALOGS = {
    "postgresql": pg_catalog.catalog,
    "mysql": mysql_catalog.catalog,
    "sqlite": sqlite_catalog.catalog,
}
RESULTS_VARIABLE = "TIDEGATE_TYPE_MATRIX"
LOAD_THREADS = 4
SHARD_THREADS = 4
SHARD_UNITS = 14
# Servers' fixtures, by dialect: resolved before threads start, as pytest's fixture
# machinery is not thread-safe.
SERVER_FIXTURES = {"postgresql": "pg_database", "mysql": "mysql_server"}
Combination = tuple[str, str, str]  # source, target, export kind


def _without_tls(url: str) -> str:
    """A MariaDB URL whose connections skip TLS. PyMySQL otherwise builds a TLS context
    for every connection (to try TLS first), 27 ms of CPU each: with the hundreds of
    connections tidegate opens here, a third of the suite's time. Values do not care."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "mysql":
        return url
    query = {**parsed.query, "ssl_disabled": "true"}
    return parsed.set(query=query).render_as_string(hide_password=False)


class _Fixtures:
    """What `make_target` asks of a request: session fixtures already resolved."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def getfixturevalue(self, name: str) -> Any:
        return self.values[name]


def shards(dialect: str) -> list[Catalog]:
    """A source's catalog in shards of at most SHARD_UNITS units, in catalog order."""
    catalog = CATALOGS[dialect]()
    units = catalog.units
    return [
        Catalog(catalog.dialect, units[start : start + SHARD_UNITS])
        for start in range(0, len(units), SHARD_UNITS)
    ]


class Matrix:
    """Prepared sources and judged combinations, made on first use."""

    def __init__(self, request: pytest.FixtureRequest, tmp: pytest.TempPathFactory) -> None:
        self.request = request
        self.folder = tmp.mktemp("matrix")
        self.numbers = itertools.count(1)
        self.fixtures = _Fixtures({})
        self.prepared: dict[str, list[PreparedSource]] = {}  # dialect -> its shards
        self.cells: dict[Combination, list[Cell]] = {}

    def combination(self, source: str, target: str, kind: str) -> list[Cell]:
        if (source, target, kind) not in self.cells:
            self._compute({*self._selected(), (source, target, kind)} - set(self.cells))
        return self.cells[(source, target, kind)]

    def _selected(self) -> set[Combination]:
        """The combinations of the tests this session runs."""
        wanted = set()
        for item in self.request.session.items:
            params = getattr(item, "callspec", None)
            if params is not None and "export_kind" in params.params:
                p = params.params
                wanted.add((p["source_db"], p["target_db"], p["export_kind"]))
        return wanted

    def _compute(self, combinations: set[Combination]) -> None:
        dialects = {d for combination in combinations for d in combination[:2]}
        for dialect in sorted(dialects & set(SERVER_FIXTURES)):
            name = SERVER_FIXTURES[dialect]
            self.fixtures.values[name] = self.request.getfixturevalue(name)
        sources = sorted({combination[0] for combination in combinations} - set(self.prepared))
        # The slowest first: loads into server targets, of the largest catalogs.
        ordered = sorted(combinations, key=lambda c: (c[1] in ("sqlite",), c[0] == "sqlite", c))
        with (
            ThreadPoolExecutor(SHARD_THREADS, "prepare") as preparing,
            ThreadPoolExecutor(LOAD_THREADS, "load") as loading,
        ):
            ready = {s: [preparing.submit(self._shard, s, c) for c in shards(s)] for s in sources}
            ready |= {s: [_done(p) for p in self.prepared[s]] for s in self.prepared}
            loads = {
                c: [loading.submit(self._load, shard, c[1], c[2]) for shard in ready[c[0]]]
                for c in ordered
            }
            for combination, futures in loads.items():
                self.cells[combination] = [cell for f in futures for cell in f.result()]
            for source in sources:
                self.prepared[source] = [future.result() for future in ready[source]]

    def _shard(self, dialect: str, catalog: Catalog) -> PreparedSource:
        folder = self._new_folder(f"source-{dialect}")
        source: Source
        if dialect == "postgresql":
            source = _pg_source(folder, self.fixtures.getfixturevalue("pg_database"))
        elif dialect == "mysql":
            source = _mysql_source(folder, self.fixtures.getfixturevalue("mysql_server"))
        else:
            source = _sqlite_source(folder)
        source = dataclasses.replace(source, url=_without_tls(source.url))
        return prepare(source, catalog, folder)

    def _load(self, shard: Future[PreparedSource], target: str, kind: str) -> list[Cell]:
        return load_cells(shard.result(), target, kind, lambda: self._target(target))

    def _target(self, dialect: str) -> TargetDb:
        request = cast(pytest.FixtureRequest, self.fixtures)
        made = make_target(request, dialect, self._new_folder(f"target-{dialect}"))
        return dataclasses.replace(made, url=_without_tls(made.url))

    def _new_folder(self, name: str) -> Path:
        folder = self.folder / f"{name}-{next(self.numbers)}"
        folder.mkdir()
        return folder

    def close(self) -> None:
        for shards_ in self.prepared.values():
            for prepared in shards_:
                prepared.close()
                prepared.source.dispose()

    def document(self) -> dict[str, Any]:
        cells = [cell for key in sorted(self.cells) for cell in self.cells[key]]
        return results_document(self.prepared, cells, KNOWN_DEFECTS)


def _done(prepared: PreparedSource) -> Future[PreparedSource]:
    future: Future[PreparedSource] = Future()
    future.set_result(prepared)
    return future


@pytest.fixture(scope="session")
def matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    made = Matrix(request, tmp_path_factory)
    yield made
    path = os.environ.get(RESULTS_VARIABLE)
    if path:
        Path(path).write_bytes(orjson.dumps(made.document(), option=orjson.OPT_INDENT_2))
    made.close()
