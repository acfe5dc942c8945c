"""A SQLite column may hold a value of any storage class: one its exported type cannot
carry exactly is refused by both export kinds in one line naming the row, and nothing is
written; a text holding NUL, which the sqlite3 program cannot print, is exported exactly
(docs/types.md, "SQLite storage classes")."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from tests.conftest import Source
from tests.test_cli import assert_one_error, run


def _sqlite(source: Source) -> Path:
    path = source.url.removeprefix("sqlite:///")
    assert path != source.url, "these tests need a SQLite source"
    return Path(path)


def _exports(folder: Path) -> list[Path]:
    location = folder / "exports"
    return sorted(location.glob("export_*")) if location.exists() else []


def _create(source: Source, ddl: str, *rows: str) -> Path:
    import sqlite3

    folder = source.tmp_path
    with sqlite3.connect(_sqlite(source)) as conn:
        conn.execute(ddl)
        for row in rows:
            conn.execute(row)
    config = f'[source]\nurl = "{source.url}"\n'
    code, _out, err = run(folder, "init", config=config)
    assert code == 0, err
    return folder


@pytest.mark.parametrize(
    ("declared", "value", "holds", "exported_as"),
    [
        ("TEXT", "X'00ff'", "a blob", "text"),
        ("INTEGER", "'abc'", "a text", "bigint"),
        ("INTEGER", "2.5", "a real", "bigint"),
        ("", "7", "an integer", "text"),
        ("BLOB", "'abc'", "a text", "binary"),
    ],
)
def test_a_value_its_type_cannot_carry_is_refused_naming_the_row(
    sqlite_source: Source, declared: str, value: str, holds: str, exported_as: str
) -> None:
    folder = _create(
        sqlite_source,
        f"CREATE TABLE note (id INTEGER PRIMARY KEY, body {declared})",
        "INSERT INTO note VALUES (1, NULL)",
        f"INSERT INTO note VALUES (2, {value})",
    )
    code, _out, err = run(folder, "export", "tables")
    assert code == 1
    shown = declared or "no declared type"
    assert_one_error(
        err,
        rf"Error: table note column body \({shown}\) holds {holds} at id=2: it is exported "
        rf"as {exported_as}, which cannot hold {holds} exactly",
    )
    assert "SQLite storage classes" in err
    assert _exports(folder) == []


def test_the_entity_export_refuses_it_too(sqlite_source: Source) -> None:
    folder = _create(
        sqlite_source,
        "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)",
        "INSERT INTO note VALUES (1, 'fine')",
        "INSERT INTO note VALUES (2, X'00ff')",
    )
    code, _out, err = run(folder, "entities", "enable", "NOTE")
    assert code == 0, err
    code, _out, err = run(folder, "export", "initial", "NOTE")
    assert code == 1
    assert_one_error(err, r"Error: table note column body \(TEXT\) holds a blob at id=2: .*")


def test_text_holding_nul_is_exported_exactly(sqlite_source: Source) -> None:
    folder = _create(
        sqlite_source,
        "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)",
        "INSERT INTO note VALUES (1, 'nul' || char(0) || 'inside')",
        "INSERT INTO note VALUES (2, 'plain')",
    )
    code, _out, err = run(folder, "export", "tables")
    assert code == 0, err
    (export,) = _exports(folder)
    (archive,) = export.glob("*.zip")
    with zipfile.ZipFile(archive) as zipped:
        text = zipped.read("note.csv").decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["id", "body"], ["1", "nul\x00inside"], ["2", "plain"]]
