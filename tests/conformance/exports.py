"""Exporting each unit of a catalog on its own, through both export kinds.

Table export: `init` with `[tables] include` set to the unit's tables, then one export
into a location of the unit's own. Each export after the source's first is a
`--restart-from-beginning` snapshot, so each location holds one snapshot folder whose
`hwm-from` is the `hwm-to` of the unit before: a target that loaded the units before
goes on with it, and an empty target starts with it.

Entity export: the unit's tables are roots of entities of their own (the catalog has no
foreign keys); they are enabled with ongoing capture and exported by an initial run into
a location of the unit's own.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import tidegate
from tests.conformance.catalog import Catalog, Unit
from tests.conformance.outcomes import Failure
from tests.conftest import Source
from tidegate import api

Exported = Path | Failure  # the location holding the unit's export, or what stopped it


@dataclass(frozen=True)
class UnitExports:
    tables: Exported
    entities: Exported

    def of(self, kind: str) -> Exported:
        return self.tables if kind == "tables" else self.entities


def export_units(source: Source, catalog: Catalog, base: Path) -> dict[str, UnitExports]:
    """Every unit exported both ways, each into locations of its own under `base`."""
    tables = _table_exports(source, catalog.units, base)
    entities = _entity_exports(source, catalog.units, base)
    return {
        unit.name: UnitExports(tables[unit.name], entities[unit.name]) for unit in catalog.units
    }


def _table_exports(source: Source, units: list[Unit], base: Path) -> dict[str, Exported]:
    results: dict[str, Exported] = {}
    failed = False
    for number, unit in enumerate(units):
        location = base / unit.name / "tables"
        include = f"tables.include={json.dumps([table.name for table in unit.tables])}"
        config = source.config(include, f"output.location={location}")
        step = "init"
        try:
            tidegate.init(config)
            if failed:
                _finish_failed_run(source, include, base)
            step = "export tables"
            # Every export after the stream's first attempt is a new snapshot.
            written = tidegate.export_tables(config, restart_from_beginning=number > 0)
        except Exception as error:  # every error is an outcome of the matrix
            results[unit.name], failed = Failure.of(step, error), True
            continue
        failed = False
        results[unit.name] = location if written else Failure(step, "wrote nothing", False)
    return results


def _finish_failed_run(source: Source, include: str, base: Path) -> None:
    """After a failed export, the export it planned is redone by the next run, whatever
    that run's options (plan.py, rule 1): let that happen into a scratch location, so that
    the next unit's location holds its own snapshot. Its own failure is the failed unit's."""
    scratch = source.config(include, f"output.location={base / '.after-a-failed-export'}")
    with contextlib.suppress(Exception):
        tidegate.export_tables(scratch, location_moved=True)


def _entity_exports(source: Source, units: list[Unit], base: Path) -> dict[str, Exported]:
    try:
        statuses = api.entities_list(source.config())
    except Exception as error:  # every error is an outcome of the matrix
        return {unit.name: Failure.of("entities list", error) for unit in units}
    entity_of = {status.entity.root: status.entity.name for status in statuses}
    names = {
        u.name: sorted({entity_of[t.name] for t in u.tables if t.name in entity_of}) for u in units
    }
    # One call enables them all; should one refuse, each unit is enabled on its own, so
    # that the refusal is that unit's outcome alone.
    try:
        api.entities_enable(
            source.config(), sorted({n for ns in names.values() for n in ns}), ongoing=True
        )
        enabled = True
    except Exception:
        enabled = False
    results: dict[str, Exported] = {}
    for unit in units:
        location = base / unit.name / "entities"
        config = source.config(f"output.location={location}")
        if not names[unit.name]:
            results[unit.name] = Failure("entities list", "the table is in no entity", False)
            continue
        step = "entities enable"
        try:
            if not enabled:
                api.entities_enable(config, names[unit.name], ongoing=True)
            step = "export initial"
            api.export_initial(config, names[unit.name])
        except Exception as error:  # every error is an outcome of the matrix
            results[unit.name] = Failure.of(step, error)
            continue
        results[unit.name] = location
    return results
