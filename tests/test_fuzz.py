"""Inputs a user controls, generated: config files, and export archives mutated at random.

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
from hypothesis import HealthCheck, given, settings
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
