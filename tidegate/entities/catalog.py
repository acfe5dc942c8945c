"""Which entities the source holds: discovered from its foreign keys, or defined in config.

An entity is a root table plus the child tables that hang off its primary key: tables whose
primary key begins with a foreign key to the root's primary key. A table that is no such
child of another table is a root of its own. Key tables (`*_k`, `*_key`) and log tables
(`*_log`) are never part of an entity. A table whose key hangs off a child rather than the
root (a grandchild) is in no entity. Discovery takes only the tables `[tables] include`
and `exclude` select (a `*_tmp` table excluded from table export is no entity either);
`[entities.define]` names its tables itself.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tidegate.config import EntitiesConfig, EntityDefinition, ExportClass
from tidegate.db import Database, list_tables

MAX_ROOT_KEY_COLUMNS = 5
NEVER_EXPORTED = ("*_k", "*_key", "*_log")


@dataclass(frozen=True)
class Child:
    """A child table, and its columns that hold the root's key (in root-key order)."""

    table: str
    root_columns: tuple[str, ...]


@dataclass(frozen=True)
class Entity:
    """A root table with its children, as tidegate exports them together.

    Attributes:
        name: the entity's name (the root table's name in upper case when discovered).
        root: the root table.
        key: the root's primary-key columns.
        children: the child tables.
        export_class: generalized, specialized or none.
        problem: why the entity cannot be exported although generalized; "" when it can.
    """

    name: str
    root: str
    key: tuple[str, ...]
    children: tuple[Child, ...] = field(default=())
    export_class: ExportClass = "generalized"
    problem: str = ""

    @property
    def tables(self) -> tuple[str, ...]:
        """The root, then the children."""
        return (self.root, *(child.table for child in self.children))

    @property
    def eligible(self) -> bool:
        return self.export_class == "generalized" and not self.problem

    def refusal(self) -> str:
        """Why the entity is not eligible, as a sentence; "" when it is."""
        if self.export_class != "generalized":
            return (
                f"entity {self.name} has export class {self.export_class!r}; only "
                "generalized entities are exported"
            )
        return f"entity {self.name}: {self.problem}" if self.problem else ""

    def key_columns(self, table: str) -> tuple[str, ...]:
        """The columns of `table` (the root or a child) that hold the root's key."""
        if table == self.root:
            return self.key
        return next(child.root_columns for child in self.children if child.table == table)


def catalog(
    db: Database, config: EntitiesConfig, selects: Callable[[str], bool] = lambda _table: True
) -> list[Entity]:
    """Every entity, by name: the defined ones when `[entities.define]` has any, else the
    ones discovered among the tables `selects` (`[tables]`' filters)."""
    shape = _Shape.read(db)
    if config.define:
        entities = [_defined(shape, name, d) for name, d in config.define.items()]
    else:
        entities = _discovered(shape, selects)
    return sorted(entities, key=lambda entity: entity.name)


def left_out(
    db: Database, config: EntitiesConfig, selects: Callable[[str], bool] = lambda _table: True
) -> dict[str, str]:
    """Each source table in no entity, and why (for `entities list`: a table a user
    expected to be exported with an entity, and is not)."""
    shape = _Shape.read(db)
    entities = catalog(db, config, selects)
    roots = {entity.root for entity in entities}
    held = {table for entity in entities for table in entity.tables}
    return {
        table: _why_left_out(table, shape, config, selects, roots)
        for table in shape.tables
        if table not in held
    }


def _why_left_out(
    table: str,
    shape: _Shape,
    config: EntitiesConfig,
    selects: Callable[[str], bool],
    roots: set[str],
) -> str:
    if config.define:
        return "not named by any [entities.define]"
    if _never_exported(table):
        return f"key and log tables ({', '.join(NEVER_EXPORTED)}) are in no entity"
    if not selects(table):
        return "not selected by [tables] include / exclude"
    if not shape.keys[table]:
        return "it has no primary key"
    parents = sorted({parent for parent, _columns in shape.parents.get(table, [])} - roots)
    return (
        f"its primary key begins with a foreign key to {', '.join(parents)}, which is no "
        "entity's root (a child's child, or the child of a table left out, is in no "
        "entity; [entities.define] can make one)"
    )


@dataclass
class _Shape:
    """The tables, keys and key-prefix foreign keys of the source."""

    tables: list[str]
    keys: dict[str, tuple[str, ...]]
    parents: dict[str, list[tuple[str, tuple[str, ...]]]]  # child -> [(parent, root columns)]

    @staticmethod
    def read(db: Database) -> _Shape:
        inspector = sa.inspect(db.engine)
        tables = [t for t in list_tables(db) if not t.lower().startswith("tidegate_")]
        keys = {
            t: tuple(
                inspector.get_pk_constraint(t, schema=db.schema).get("constrained_columns") or ()
            )
            for t in tables
        }
        parents: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for table in tables:
            for foreign_key in inspector.get_foreign_keys(table, schema=db.schema):
                link = _key_link(foreign_key, keys, table)
                if link is not None:
                    parents.setdefault(table, []).append(link)
        return _Shape(tables, keys, parents)


def _key_link(
    foreign_key: Mapping[str, Any], keys: dict[str, tuple[str, ...]], table: str
) -> tuple[str, tuple[str, ...]] | None:
    """(parent, child columns in the parent's key order) when the foreign key makes `table`
    a child: it points at the parent's whole primary key from a prefix of the child's."""
    parent = foreign_key.get("referred_table")
    columns = tuple(foreign_key.get("constrained_columns") or ())
    referred = tuple(foreign_key.get("referred_columns") or ())
    if (
        parent is None
        or parent == table
        or parent not in keys
        or not columns
        or set(referred) != set(keys[parent])
        or keys[table][: len(columns)] != columns
    ):
        return None
    return parent, tuple(columns[referred.index(k)] for k in keys[parent])


def _never_exported(table: str) -> bool:
    return any(fnmatch.fnmatch(table.lower(), pattern) for pattern in NEVER_EXPORTED)


def _discovered(shape: _Shape, selects: Callable[[str], bool]) -> list[Entity]:
    candidates = [
        t for t in shape.tables if not _never_exported(t) and shape.keys[t] and selects(t)
    ]
    children: dict[str, list[Child]] = {}
    for table in candidates:
        for parent, columns in shape.parents.get(table, []):
            children.setdefault(parent, []).append(Child(table, columns))
    roots = [t for t in candidates if t not in shape.parents]
    names = _entity_names(roots)
    return [
        _checked(
            Entity(
                names[root],
                root,
                shape.keys[root],
                tuple(c for c in children.get(root, []) if c.table in candidates),
            )
        )
        for root in roots
    ]


def _entity_names(roots: list[str]) -> dict[str, str]:
    """Each root's entity name: the table's name in upper case; where two tables give
    the same one ("Case" and "case"), the first in name order keeps it and the others
    take `_2`, `_3`, … (a name an entity already has is skipped)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for root in sorted(roots, key=lambda table: (table.upper(), table)):
        name, number = root.upper(), 1
        while name in taken:
            number += 1
            name = f"{root.upper()}_{number}"
        names[root] = name
        taken.add(name)
    return names


def _defined(shape: _Shape, name: str, definition: EntityDefinition) -> Entity:
    root = definition.root
    if root not in shape.keys:
        return Entity(
            name, root, (), (), definition.export_class, f"its root table {root!r} does not exist"
        )
    if not shape.keys[root]:
        return Entity(
            name,
            root,
            (),
            (),
            definition.export_class,
            f"its root table {root!r} has no primary key",
        )
    children = []
    for table in definition.children:
        link = next((c for p, c in shape.parents.get(table, []) if p == root), None)
        if table not in shape.keys:
            return Entity(
                name,
                root,
                shape.keys[root],
                (),
                definition.export_class,
                f"its child table {table!r} does not exist",
            )
        if link is None:
            return Entity(
                name,
                root,
                shape.keys[root],
                (),
                definition.export_class,
                f"child table {table!r} has no primary key beginning with a foreign "
                f"key to {root!r}",
            )
        children.append(Child(table, link))
    return _checked(Entity(name, root, shape.keys[root], tuple(children), definition.export_class))


def _checked(entity: Entity) -> Entity:
    if len(entity.key) > MAX_ROOT_KEY_COLUMNS:
        return Entity(
            entity.name,
            entity.root,
            entity.key,
            entity.children,
            entity.export_class,
            f"its root key has {len(entity.key)} columns; at most "
            f"{MAX_ROOT_KEY_COLUMNS} can be exported",
        )
    return entity
