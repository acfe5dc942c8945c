"""The CLI contract: exit codes, one-line errors naming file and key, no tracebacks."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.conftest import Source
from tidegate.cli import app, entry_point

runner = CliRunner()


def run(tmp_path: Path, *args: str, config: str | None = None) -> tuple[int, str, str]:
    """Run the CLI in tmp_path, with `config` as tidegate.toml there."""
    if config is not None:
        (tmp_path / "tidegate.toml").write_text(config)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = runner.invoke(app, list(args), env={"TIDEGATE_CONFIG": ""})
    finally:
        os.chdir(cwd)
    return result.exit_code, result.stdout, result.stderr


def assert_one_error(stderr: str, pattern: str) -> None:
    """stderr is `Error: <one line>` (matching pattern) and at most one `Hint:` line."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert 1 <= len(lines) <= 2, stderr
    assert re.fullmatch(pattern, lines[0]), lines[0]
    if len(lines) == 2:
        assert lines[1].startswith("Hint: ")


CONFIG_ERRORS = [
    pytest.param(
        '[tables]\nmax_span = "1x"\n',
        r"Error: tidegate\.toml: \[tables\] max_span: invalid duration '1x'",
        id="bad-duration",
    ),
    pytest.param(
        '[tables]\nmax_spam = "1d"\n',
        r"Error: tidegate\.toml: \[tables\] unknown key 'max_spam'",
        id="unknown-key",
    ),
    pytest.param(
        '[tabels]\ninclude = ["*"]\n',
        r"Error: tidegate\.toml: unknown section \[tabels\].*",
        id="unknown-section",
    ),
    pytest.param(
        "[tables\n",
        r"Error: tidegate\.toml: invalid TOML at line 1, column \d+: .+",
        id="toml-syntax",
    ),
    pytest.param(
        '[entities]\nthreads = "four"\n',
        r"Error: tidegate\.toml: \[entities\] threads: expected an integer, got 'four'",
        id="wrong-type",
    ),
    pytest.param(
        '[tables]\ninclude = ["cust[omer"]\n',
        r"Error: tidegate\.toml: \[tables\] include: invalid glob 'cust\[omer'.*",
        id="bad-glob",
    ),
    pytest.param(
        '[source]\nurl = "postgresql+psycopg2://u@127.0.0.1/x"\n',
        r"Error: tidegate\.toml: \[source\] url: the driver 'psycopg2' for postgresql "
        r"is not installed",
        id="driver-missing",
    ),
    pytest.param(
        '[source]\nurl = "postgresql://postgres@127.0.0.1:1/x"\n',
        r"Error: tidegate\.toml: \[source\] url: cannot connect to "
        r"postgresql\+psycopg://postgres@127\.0\.0\.1:1/x: .*refused.*",
        id="server-refuses",
    ),
    pytest.param(
        '[source]\nurl = "mysql://root:secret@127.0.0.1:1/x"\n',
        r"Error: tidegate\.toml: \[source\] url: cannot connect to "
        r"mysql\+pymysql://root:\*\*\*@127\.0\.0\.1:1/x: .*",
        id="password-hidden",
    ),
    pytest.param(
        '[source]\nurl = "oracle://x"\n',
        r"Error: tidegate\.toml: \[source\] url: 'oracle' databases are not supported",
        id="unsupported-database",
    ),
    pytest.param(
        '[source]\nurl = "sqlite:///missing.db"\n',
        r"Error: tidegate\.toml: \[source\] url: SQLite database file 'missing\.db' "
        r"does not exist",
        id="sqlite-missing",
    ),
]


@pytest.mark.parametrize(("config", "pattern"), CONFIG_ERRORS)
def test_config_error_is_one_line_and_touches_nothing(
    tmp_path: Path, config: str, pattern: str
) -> None:
    code, _out, err = run(tmp_path, "init", config=config)
    assert code == 1
    assert_one_error(err, pattern)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tidegate.toml"]


def test_typo_suggests_the_nearest_key(tmp_path: Path) -> None:
    _code, _out, err = run(tmp_path, "init", config='[tables]\nmax_spam = "1d"\n')
    assert "Hint: did you mean 'max_span'?" in err


def test_missing_config_file_named_by_option(tmp_path: Path) -> None:
    code, _out, err = run(tmp_path, "--config", "nope.toml", "runs")
    assert code == 1
    assert_one_error(err, r"Error: nope\.toml: config file not found")


def test_override_error_names_the_override(tmp_path: Path) -> None:
    code, _out, err = run(tmp_path, "--set", "tables.max_span=3", "init", config="")
    assert code == 1
    assert_one_error(err, r"Error: --set tables\.max_span=3: \[tables\] max_span: .*")


def test_not_initialized_is_one_line(tmp_path: Path) -> None:
    sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}").connect().close()
    code, _out, err = run(tmp_path, "runs", config="")
    assert code == 1
    assert_one_error(err, r"Error: tidegate is not set up in sqlite:///source\.db")


def test_init_status_runs_end_to_end(source: Source) -> None:
    table = sa.Table(
        "item", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)
    )
    source.create(table)
    source.config()  # writes tidegate.toml
    settings = [f"source.url={source.url}"]
    if source.schema:
        settings.append(f"source.schema={source.schema}")
    options = [arg for setting in settings for arg in ("--set", setting)]

    code, out, err = run(source.tmp_path, *options, "init")
    assert code == 0, err
    assert "capture installed on item" in out
    with source.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": 1}, {"id": 2}])
    code, out, _err = run(source.tmp_path, *options, "status", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["pending"] == [{"table": "item", "pending": 2}]
    sizes = {size["table"]: size for size in status["footprint"]}
    assert sizes["tidegate_pending"]["rows"] == 2 and sizes["tidegate_change"]["rows"] == 0
    assert all(size["bytes"] > 0 for size in sizes.values()), sizes
    code, out, _err = run(source.tmp_path, *options, "runs", "--json")
    assert code == 0
    [record] = json.loads(out)
    assert (record["job"], record["run"], record["status"], record["rows"]) == (
        "init",
        1,
        "succeeded",
        1,
    )
    code, out, _err = run(source.tmp_path, *options, "uninstall", "--yes")
    assert code == 0 and "control tables dropped" in out


def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "tidegate.toml").write_text("[entities]\nthreads = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "tidegate", "init"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "TIDEGATE_CONFIG": ""},
    )
    assert result.returncode == 1
    assert_one_error(result.stderr, r"Error: tidegate\.toml: \[entities\] threads: .+")


def test_unknown_command_and_option_are_usage_errors(tmp_path: Path) -> None:
    code, _out, err = run(tmp_path, "frobnicate", config="")
    assert code == 2 and "Traceback" not in err
    code, _out, err = run(tmp_path, "runs", "--jsn", config="")
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize(("argv", "status"), [(["--version"], 0), (["no-such-command"], 2)])
def test_the_command_exits_with_the_apps_status_its_objects_left_to_the_os(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], status: int
) -> None:
    """The console script's exit: the app's own status, and every object frozen out of
    the collection Python runs at exit (which took 0.4 s after a load into Iceberg)."""
    monkeypatch.setattr(sys, "argv", ["tidegate", *argv])
    try:
        with pytest.raises(SystemExit) as exited:
            entry_point()
        assert exited.value.code == status
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
