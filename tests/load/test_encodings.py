"""Exports in every documented `[output] encoding` load: the manifest names the encoding,
and the loader reads the CSV members in it (a `utf-8-sig` mark once, at the start)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conformance.reading import quoted
from tests.conftest import Source
from tests.load.conftest import TargetDb, make_target
from tests.test_cli import run

ROWS = [
    (1, "Zürich café, €5", ""),
    (2, 'quoted "x", comma', None),
    (3, "line\nbreak", "trailing  "),
]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("target_kind", ["sqlite", "postgresql"])
def test_an_export_in_each_encoding_verifies_and_loads_exactly(
    request: pytest.FixtureRequest,
    sqlite_source: Source,
    tmp_path: Path,
    encoding: str,
    target_kind: str,
) -> None:
    source = sqlite_source
    table = sa.Table(
        "word",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("text", sa.Text),
        sa.Column("other", sa.Text),
    )
    source.create(table)
    with source.engine().begin() as conn:
        conn.execute(
            table.insert(), [dict(zip(("id", "text", "other"), r, strict=True)) for r in ROWS]
        )
    target: TargetDb = make_target(request, target_kind, tmp_path)
    options = source.cli_options(f"output.encoding={encoding}", f"target.url={target.url}")
    for command in (["init"], ["export", "tables"], ["verify"], ["load"]):
        code, out, err = run(source.tmp_path, *options, *command)
        assert code == 0, f"{command}: {out}{err}"
    [folder] = (source.tmp_path / "exports").glob("export_*")
    with zipfile.ZipFile(folder / f"{folder.name}.zip") as archive:
        member = archive.read("word.csv")
    assert member.count(b"\xef\xbb\xbf") == (1 if encoding == "utf-8-sig" else 0)
    assert ("€".encode(encoding.removesuffix("-sig"))) in member
    engine = target.engine()
    with engine.connect() as conn:
        held = sorted(
            conn.exec_driver_sql(f"SELECT id, text, other FROM {quoted(engine, 'word')}").all()
        )
    target.dispose()
    assert [tuple(row) for row in held] == ROWS
