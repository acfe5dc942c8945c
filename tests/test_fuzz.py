"""Inputs a user controls, generated: config files, table and column names, and export
archives mutated at random (with their checksums left wrong, and made right again).

The property: a command ends with one clear `Error:` line (and maybe a `Hint:`) and exit 1,
or succeeds; never a traceback, an "unexpected" error, or a write outside the target.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import tidegate
from tests.conftest import Source
from tests.tables.helpers import sample_tables
from tests.test_cli import run

SECTIONS = ["source", "output", "tables", "entities", "target", "schedule", "serve", "bogus"]
KEYS = [
    "url",
    "schema",
    "timezone",
    "location",
    "encoding",
    "include",
    "exclude",
    "max_span",
    "time_columns",
    "threads",
    "records_per_file",
    "file_prefix",
    "thread_limit",
    "auto_backlog",
    "tables",
    "ongoing",
    "load",
    "host",
    "port",
    "token",
    "nonsense",
]
SCALARS = st.one_of(
    st.text(max_size=30),
    st.integers(-(10**12), 10**12),
    st.booleans(),
    st.floats(allow_nan=False),
    st.sampled_from(["1d", "-1h", "sqlite:///x.db", "postgresql://nobody@127.0.0.1:1/x", "*"]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=2),
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def config_files(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:  # sometimes not TOML at all
        return draw(st.text(max_size=200))
    lines = []
    for section in draw(st.lists(st.sampled_from(SECTIONS), unique=True, max_size=5)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=4)):
            lines.append(f"{key} = {toml_value(draw(VALUES))}")
    return "\n".join(lines) + "\n"


def assert_clear_outcome(code: int, err: str) -> None:
    assert "Traceback" not in err
    if code != 0:
        assert code == 1, err
        lines = err.strip().splitlines()
        assert lines and lines[0].startswith("Error: "), err
        assert not lines[0].startswith("Error: unexpected "), err


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=config_files())
def test_any_config_file_gives_one_clear_line_or_works(tmp_path: Path, text: str) -> None:
    code, _out, err = run(tmp_path, "status", config=text)
    assert_clear_outcome(code, err)


@pytest.fixture
def exported(sqlite_source: Source) -> Path:
    sqlite_source.create(*sample_tables())
    config = sqlite_source.config()
    tidegate.init(config)
    tidegate.export_tables(config)
    return sqlite_source.tmp_path / "exports"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 8))
def test_mutated_archives_are_refused_clearly(
    exported: Path, tmp_path: Path, seed: int, flips: int
) -> None:
    """Random bytes of a zip, or of its .sha1 file and manifest, changed: verify and load
    give one clear line (or succeed, if the change left everything valid)."""
    rng = random.Random(seed)
    location = tmp_path / f"mutated_{seed}"
    shutil.rmtree(location, ignore_errors=True)
    shutil.copytree(exported, location)
    folder = next(location.glob("export_*"))
    victim = rng.choice(sorted(p for p in folder.iterdir() if p.is_file()))
    data = bytearray(victim.read_bytes())
    for _ in range(flips):
        data[rng.randrange(len(data))] = rng.randrange(256)
    victim.write_bytes(bytes(data))
    config = f'[target]\nurl = "sqlite:///{tmp_path / f"target_{seed}.db"}"\n'
    code, out, err = run(tmp_path, "verify", str(location), config=config)
    assert "Traceback" not in out + err
    assert code == 0 or "problem(s)" in out, out + err  # verify lists what it found
    code, _out, err = run(tmp_path, "load", str(location), config=config)
    assert_clear_outcome(code, err)
    assert not (tmp_path.parent / "evil").exists()


# No lone surrogates (no database stores them) and no control characters (init refuses
# those, with one line: the sampled names below include one).
NAME_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc"))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    table=st.one_of(
        st.text(NAME_CHARACTERS, min_size=1, max_size=24),
        st.sampled_from(
            [
                'x"; DROP TABLE y; --',
                "a/b",
                "../up",
                ".hidden",
                "order",
                "a b",
                "%41",
                "Ünï",
                "t\x1f",
            ]
        ),
    ),
    column=st.text(NAME_CHARACTERS, min_size=1, max_size=12),
)
def test_any_table_or_column_name_exports_and_loads_or_is_refused_clearly(
    tmp_path: Path, table: str, column: str
) -> None:
    """Tables and columns named anything SQLite accepts go through capture, both export
    kinds, verify and load, and arrive equal; or a step says clearly why not. Entity names
    made from them are then given back to the CLI."""
    import sqlite3

    import sqlalchemy as sa
    from hypothesis import assume

    assume(not table.lower().startswith(("sqlite_", "tidegate_")))
    assume(column.lower() != "id")
    case = tmp_path / f"case_{abs(hash((table, column)))}"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir()
    engine = sa.create_engine(f"sqlite:///{case / 'source.db'}")
    named = sa.Table(
        table,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(column, sa.Text),
    )
    try:
        with engine.begin() as conn:
            named.create(conn)
            conn.execute(named.insert(), [{"id": 1, column: "one"}, {"id": 2, column: None}])
    except sa.exc.OperationalError:
        assume(False)  # a name SQLite itself refuses
    finally:
        engine.dispose()
    config = (
        f'[source]\nurl = "sqlite:///{case / "source.db"}"\n'
        f'[output]\nlocation = "{case / "exports"}"\n'
        f'[target]\nurl = "sqlite:///{case / "target.db"}"\n'
    )
    (case / "tidegate.toml").write_text(config)
    steps = [
        ["init"],
        ["export", "tables"],
        ["entities", "enable", "--all", "--ongoing"],
        ["export", "initial"],
        ["verify"],
        ["load"],
    ]
    for step in steps:
        code, _out, err = run(case, *step)
        assert_clear_outcome(code, err)
        if code != 0:
            event(f"refused at {' '.join(step)}")
            return  # refused, clearly
    event("exported and loaded")
    code, out, err = run(case, "entities", "list", "--json")
    assert code == 0, err
    for entity in json.loads(out):
        code, _out, err = run(case, "entities", "reset", entity["name"])
        assert code == 0, err
    with sqlite3.connect(case / "target.db") as target:
        quoted = '"' + table.replace('"', '""') + '"'
        rows = sorted(target.execute(f"SELECT * FROM {quoted}").fetchall())
    assert rows == [(1, "one"), (2, None)]
    outside = [p for p in tmp_path.parent.iterdir() if p.name in ("up", "evil")]
    assert not outside


def _mutated(data: bytes, rng: random.Random) -> bytes:
    """Bytes edited at random: some flipped, inserted or deleted, or a line doubled."""
    edited = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        where = rng.randrange(max(len(edited), 1))
        choice = rng.random()
        if choice < 0.4 and edited:
            edited[where] = rng.choice(b'",\n\r\\{}[]:0a\xff\x00 ')
        elif choice < 0.7:
            edited[where:where] = bytes([rng.randrange(256)])
        elif choice < 0.9 and edited:
            del edited[where]
        else:
            lines = bytes(edited).split(b"\n")
            line = rng.randrange(len(lines))
            lines.insert(line, lines[line])
            edited = bytearray(b"\n".join(lines))
    return bytes(edited)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), entity_file=st.booleans())
def test_hostile_contents_with_every_checksum_made_right_are_handled_clearly(
    exports_both: Path, tmp_path: Path, seed: int, entity_file: bool
) -> None:
    """A CSV member or an entity file's JSON Lines edited at random, then every checksum
    (and the manifest's byte count) recomputed, as an attacker would: verify and load end
    in one clear line, or succeed; nothing is written outside the target."""
    import gzip
    import hashlib

    from tests.load.test_refusals import rewrite

    rng = random.Random(seed)
    location = tmp_path / f"hostile_{seed}_{entity_file}"
    shutil.rmtree(location, ignore_errors=True)
    shutil.copytree(exports_both, location)
    if entity_file:
        folder = location / "entities"
        manifest_path = sorted(folder.glob("*.manifest.json"))[0]
        manifest = json.loads(manifest_path.read_text())
        entry = rng.choice([f for f in manifest["files"] if f["records"]] or manifest["files"])
        path = folder / entry["name"]
        data = gzip.compress(_mutated(gzip.decompress(path.read_bytes()), rng))
        path.write_bytes(data)
        entry["sha1"], entry["bytes"] = hashlib.sha1(data).hexdigest(), len(data)
        manifest_path.write_text(json.dumps(manifest))
    else:

        def edit(members: dict[str, bytes]) -> None:
            name = rng.choice(sorted(n for n in members if n.endswith(".csv")))
            members[name] = _mutated(members[name], rng)

        rewrite(location, edit)
    target = tmp_path / f"target_{seed}_{entity_file}.db"
    target.unlink(missing_ok=True)  # each example, and its replay, from an empty target
    config = f'[target]\nurl = "sqlite:///{target}"\n'
    code, out, err = run(tmp_path, "verify", str(location), config=config)
    assert "Traceback" not in out + err
    code, _out, err = run(tmp_path, "load", str(location), config=config)
    assert_clear_outcome(code, err)
    event("loaded" if code == 0 else f"refused: {err.split(':')[-1].strip()[:40]}")
    assert not (tmp_path.parent / "evil").exists()


@pytest.fixture
def exports_both(sqlite_source: Source) -> Path:
    """A table-export folder and an initial entity run of a SQLite source."""
    from tests.load.test_roundtrip import change

    sqlite_source.create(*sample_tables())
    config = sqlite_source.config()
    tidegate.init(config)
    change(sqlite_source, random.Random(5), 30)
    tidegate.export_tables(config)
    tidegate.entities_enable(config, [], all_eligible=True)
    tidegate.export_initial(config, threads=1)
    return sqlite_source.tmp_path / "exports"
