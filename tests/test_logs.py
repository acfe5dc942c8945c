"""Logs (SPEC, "Operations"): every command logs what it does through Python's logging,
as text or as JSON lines (`--log-format json`) at `--log-level`; `serve` logs its jobs and
uvicorn's access log the same way; no line ever holds a password."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import Source, _make_source
from tests.web.conftest import make_sample, start_service, stop_service

PASSWORD = "s3cret-Pw"


@pytest.fixture
def postgres_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    yield from _make_source(request, "postgresql", tmp_path)


def _tidegate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidegate", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _config(source: Source, tmp_path: Path, target_url: str) -> Path:
    """A table with two rows in the source; the source's URL with a password (trust
    authentication ignores it), and a target."""
    with source.engine().begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{source.schema}".t (id int PRIMARY KEY, v text)')
        conn.exec_driver_sql(f"INSERT INTO \"{source.schema}\".t VALUES (1, 'a'), (2, 'b')")
    url = sa.make_url(source.url).set(password=PASSWORD)
    path = tmp_path / "logs.toml"
    schema = f'schema = "{source.schema}"\n' if source.schema else ""
    path.write_text(
        f'[source]\nurl = "{url.render_as_string(hide_password=False)}"\n{schema}'
        f'[output]\nlocation = "{tmp_path / "exports"}"\n[target]\nurl = "{target_url}"\n'
    )
    return path


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_commands_log_json_lines_without_a_password(
    postgres_source: Source, tmp_path: Path
) -> None:
    config = _config(postgres_source, tmp_path, f"sqlite:///{tmp_path / 'target.db'}")
    logged = [
        _tidegate(config, "--log-format", "json", "--log-level", "info", *command)
        for command in (["init"], ["export", "tables"], ["load"])
    ]
    for result in logged:
        assert result.returncode == 0, result.stderr
        assert PASSWORD not in result.stderr + result.stdout
    init, export, load = (_json_lines(result.stderr) for result in logged)
    assert [(r["message"], r["level"]) for r in init] == [
        ("init run 1 started", "info"),
        ("init run 1 succeeded", "info"),
    ]
    ended = export[-1]
    assert ended["logger"] == "tidegate.runs" and ended["job"] == "tables"
    assert ended["status"] == "succeeded" and ended["rows"] == 2 and ended["files"] == 3
    assert isinstance(ended["bytes"], int) and isinstance(ended["seconds"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(ended["time"]))
    applied = [r for r in load if r["message"].startswith("applied")]  # type: ignore[union-attr]
    assert len(applied) == 1 and applied[0]["kind"] == "tables" and applied[0]["rows"] == 2


def test_a_failure_is_logged_with_its_message_and_no_password(
    postgres_source: Source, tmp_path: Path
) -> None:
    """The target refuses the connection: the run's error names it, the password hidden,
    in the error line and in the log."""
    config = _config(postgres_source, tmp_path, "sqlite:///unused.db")
    text = config.read_text().replace(
        'url = "sqlite:///unused.db"', f'url = "postgresql://app:{PASSWORD}@127.0.0.1:1/x"'
    )
    config.write_text(text)
    assert _tidegate(config, "init").returncode == 0
    result = _tidegate(config, "--log-level", "info", "export", "tables")
    assert result.returncode == 0, result.stderr
    failed = _tidegate(config, "--log-level", "debug", "load")
    assert failed.returncode == 1
    assert "Error: " in failed.stderr
    assert PASSWORD not in failed.stderr + failed.stdout + result.stderr


def test_text_lines_by_default_at_the_level_asked(postgres_source: Source, tmp_path: Path) -> None:
    config = _config(postgres_source, tmp_path, f"sqlite:///{tmp_path / 'target.db'}")
    quiet = _tidegate(config, "init")
    assert quiet.returncode == 0 and quiet.stderr == ""  # commands print their own results
    told = _tidegate(config, "--log-level", "info", "init")
    lines = told.stderr.splitlines()
    assert len(lines) == 2, told.stderr
    assert re.fullmatch(
        r"\S+Z INFO tidegate\.runs: init run 2 succeeded job=init run=2 status=succeeded "
        r"rows=1 files=0 bytes=0 seconds=[\d.]+",
        lines[1],
    ), lines[1]


def test_serve_logs_its_jobs_and_every_request(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "sample")
    _tidegate(sample.config_path, "init")
    service = start_service(sample.config_path)
    try:
        with service.client() as client:
            assert client.get("/api/status").status_code == 200
            started = client.post("/api/jobs/tables/start", headers={"X-Tidegate-Request": "1"})
            assert started.status_code == 202
            for _ in range(100):
                if "tables: " in service.log():
                    break
                time.sleep(0.1)
    finally:
        stop_service(service)
    log = service.log()
    assert re.search(r"INFO uvicorn\.access: .*GET /api/status HTTP/1\.1\" 200", log), log
    assert re.search(r"INFO tidegate\.activity: tables: export_1_\S+: \d+ row", log), log
