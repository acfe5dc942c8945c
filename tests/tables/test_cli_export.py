"""`tidegate export tables` through the CLI."""

from __future__ import annotations

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
