"""`tidegate export tables` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import Source
from tests.test_cli import assert_one_error, run


def test_export_tables_end_to_end(sqlite_source: Source) -> None:
    table = sa.Table(
        "item",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(20)),
    )
    sqlite_source.create(table)
    folder = sqlite_source.tmp_path
    config = f'[source]\nurl = "{sqlite_source.url}"\n'
    assert run(folder, "init", config=config)[0] == 0

    code, out, err = run(folder, "export", "tables")
    assert code == 0, err
    assert out.startswith("export_") and ": snapshot, 1 table(s), 0 row(s)" in out

    code, out, _err = run(folder, "export", "tables")
    assert (code, out.strip()) == (0, "nothing to export: no changes are pending")

    with sqlite_source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    code, out, _err = run(folder, "export", "tables", "--until-caught-up")
    assert code == 0 and ": incremental, 1 table(s), 2 row(s)" in out
    assert len([p for p in (folder / "exports").iterdir() if p.name.startswith("export_")]) == 2

    code, out, _err = run(folder, "export", "tables", "--reexport-since", "2020-01-01")
    assert code == 0 and ": reexport," in out


def test_export_option_errors_are_one_line(sqlite_source: Source) -> None:
    sqlite_source.create(
        sa.Table("item", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    )
    folder = sqlite_source.tmp_path
    config = f'[source]\nurl = "{sqlite_source.url}"\n'
    run(folder, "init", config=config)
    code, _out, err = run(folder, "export", "tables", "--restart-from", "yesterday")
    assert code == 1
    assert_one_error(err, r"Error: --restart-from: 'yesterday' is not a date")
    code, _out, err = run(
        folder, "export", "tables", "--restart-from-beginning", "--reexport-since", "2026-01-01"
    )
    assert code == 1
    assert_one_error(
        err,
        r"Error: --restart-from-beginning and --reexport-since cannot be "
        r"used together",
    )


def _exported_item(source: Source) -> tuple[sa.Table, Path, str]:
    """Table `item` created, captured and exported once through the CLI: the table, the
    folder, and the first export's name."""
    item = sa.Table("item", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    source.create(item)
    folder = source.tmp_path
    assert run(folder, "init", config=f'[source]\nurl = "{source.url}"\n')[0] == 0
    code, out, err = run(folder, "export", "tables")
    assert code == 0, err
    return item, folder, out.split(":")[0]


def test_a_table_created_after_init_is_named_until_init_captures_it(
    sqlite_source: Source,
) -> None:
    item, folder, _first = _exported_item(sqlite_source)
    later = sa.Table("later", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    sqlite_source.create(later)
    with sqlite_source.engine().begin() as conn:
        conn.execute(item.insert(), [{"id": 1}])  # a change pending for the captured table
        conn.execute(later.insert(), [{"id": 7}])

    warning = (
        "Warning: not captured, so not exported: later (matched by [tables] include); "
        "run `tidegate init` to capture them"
    )
    code, out, err = run(folder, "status")
    assert code == 0 and warning in err.splitlines()
    code, out, err = run(folder, "status", "--json")
    assert json.loads(out)["uncaptured"] == ["later"]
    code, out, err = run(folder, "export", "tables")
    assert code == 0 and ": incremental, 1 table(s), 1 row(s)" in out
    assert warning in err.splitlines()

    code, out, err = run(folder, "init")  # captures it, and leaves item as it was
    assert code == 0, err
    code, out, err = run(folder, "export", "tables")
    assert code == 0 and ": incremental, 1 table(s), 1 row(s)" in out, out  # later, whole
    assert "Warning" not in err
    code, out, err = run(folder, "status", "--json")
    assert json.loads(out)["uncaptured"] == []


def test_uninstall_and_init_never_restart_numbering_under_an_older_chain(
    sqlite_source: Source,
) -> None:
    _item, folder, older = _exported_item(sqlite_source)
    assert run(folder, "uninstall", "--yes")[0] == 0
    assert run(folder, "init")[0] == 0
    code, _out, err = run(folder, "export", "tables")
    assert code == 1
    assert_one_error(
        err,
        rf"Error: tidegate.toml: \[output\] location: \S+ already holds table exports up to "
        rf"{older}, of a stream this source no longer knows .*",
    )
    assert sorted(p.name for p in (folder / "exports").glob("export_*")) == [older]
    code, out, err = run(folder, "--set", f"output.location={folder / 'new'}", "export", "tables")
    assert code == 0 and ": snapshot," in out, err
