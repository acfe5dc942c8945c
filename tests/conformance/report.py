"""The matrix's results as one JSON document: every source's catalog with each value as
it was written in each format, and every cell's outcome. scripts/type_matrix.py turns it
into docs/types.md.

    {"sources": {"postgresql": [{"unit": "numeric", "about": "", "tables": [
        {"name": "t_numeric", "columns": [
            {"name": "c_numeric", "sql_type": "numeric", "source_type": "numeric",
             "values": [{"row": "2", "sql": "1.10", "csv": "1.10", "json": "1.10"}]}]}]}]},
     "cells": [{"source": "postgresql", "target": "sqlite", "kind": "tables",
                "table": "t_numeric", "column": "c_numeric", "outcome": "WRONG", …,
                "known_defect": "SQLite NUMERIC keeps a REAL (15-17 digits)"}]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tests.conformance.catalog import Table
from tests.conformance.outcomes import Cell
from tests.conformance.sources import PreparedSource

NOT_WRITTEN = None  # a value the export did not write (its export failed)


def results_document(
    sources: Mapping[str, Sequence[PreparedSource]],
    cells: Sequence[Cell],
    known: Mapping[tuple[str, str, str, str], str],
) -> dict[str, Any]:
    """`sources`: each source dialect's shards, in catalog order; `known`: the reasons of
    KNOWN_DEFECTS, given to the cells they name."""
    return {
        "sources": {
            dialect: [unit for shard in shards for unit in _units(shard)]
            for dialect, shards in sources.items()
        },
        "cells": [
            {**dataclasses.asdict(cell), "known_defect": known.get(cell.key, "")} for cell in cells
        ],
    }


def _units(prepared: PreparedSource) -> list[dict[str, Any]]:
    return [
        {
            "unit": unit.name,
            "about": unit.about,
            "tables": [_table(prepared, table) for table in unit.tables],
        }
        for unit in prepared.catalog.units
    ]


def _table(prepared: PreparedSource, table: Table) -> dict[str, Any]:
    inserted = [c.name for c in table.inserted]
    literals = [dict(zip(inserted, row, strict=True)) for row in table.rows]
    csv = prepared.written["tables"].get(table.name, {})
    json = prepared.written["entities"].get(table.name, {})
    columns = []
    for column in table.tested:
        values = []
        for literal in literals:
            row = literal[table.row_id]
            values.append(
                {
                    "row": row,
                    "sql": literal.get(column.name, "(generated)"),
                    "csv": csv.get(column.name, {}).get(row, NOT_WRITTEN),
                    "json": json.get(column.name, {}).get(row, NOT_WRITTEN),
                }
            )
        columns.append(
            {
                "name": column.name,
                "sql_type": column.sql_type,
                "source_type": prepared.types[table.name].get(column.name, ""),
                "values": values,
            }
        )
    return {"name": table.name, "key": list(table.key), "columns": columns}
