"""A sample SQLite source with three entities, and `tidegate serve` running on it.

The service runs as a real subprocess (`python -m tidegate serve --port 0`), so tests see
what a user sees: its own process, its own port, its own scheduler.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tidegate.config import Config, load_config

SCHEMA = """
CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance NUMERIC(12, 2));
CREATE TABLE account_note (
    account_id INTEGER NOT NULL REFERENCES account(id),
    note_no INTEGER NOT NULL,
    body TEXT,
    PRIMARY KEY (account_id, note_no)
);
CREATE TABLE shipment (id INTEGER PRIMARY KEY, destination TEXT);
CREATE TABLE shipment_item (
    shipment_id INTEGER NOT NULL REFERENCES shipment(id),
    line INTEGER NOT NULL,
    sku TEXT,
    PRIMARY KEY (shipment_id, line)
);
CREATE TABLE supplier (code TEXT PRIMARY KEY, name TEXT);
INSERT INTO account VALUES (1, 'Ada', 10.50), (2, 'Grace "G" Hopper', 0);
INSERT INTO account_note VALUES (1, 1, 'first, with a comma'), (1, 2, 'line one
line two');
INSERT INTO shipment VALUES (10, 'Zürich'), (11, 'Oslo');
INSERT INTO shipment_item VALUES (10, 1, 'SKU-1'), (10, 2, 'SKU-2');
INSERT INTO supplier VALUES ('<b>acme</b>', 'Acme & Sons');
"""

SERVE_START_SECONDS = 30


@dataclass
class Sample:
    """The sample's files: source, config, exports, target."""

    directory: Path

    @property
    def source(self) -> Path:
        return self.directory / "source.db"

    @property
    def config_path(self) -> Path:
        return self.directory / "tidegate.toml"

    @property
    def exports(self) -> Path:
        return self.directory / "exports"

    def config(self) -> Config:
        return load_config(self.config_path, environ={})

    def write(self, sql: str) -> None:
        """One committed transaction of the sample's application."""
        with sqlite3.connect(self.source) as conn:
            conn.executescript(sql)


def make_sample(directory: Path, extra_config: str = "") -> Sample:
    directory.mkdir(parents=True, exist_ok=True)
    sample = Sample(directory)
    with sqlite3.connect(sample.source) as conn:
        conn.executescript(SCHEMA)
    sample.config_path.write_text(
        f'[source]\nurl = "sqlite:///{sample.source}"\n'
        f'[output]\nlocation = "{sample.exports}"\n'
        f'[target]\nurl = "sqlite:///{directory / "target.db"}"\n' + extra_config
    )
    return sample


@pytest.fixture
def sample(tmp_path: Path) -> Sample:
    """A sample source with `tidegate init` done."""
    from tidegate import api

    made = make_sample(tmp_path / "sample")
    api.init(made.config())
    return made


@dataclass
class Service:
    """A running `tidegate serve`, its standard error (its log) going to a file."""

    url: str
    process: subprocess.Popen[str]
    log_path: Path

    def client(self, **options: object) -> httpx2.Client:
        return httpx2.Client(base_url=self.url, timeout=30, **options)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text()


def start_service(config_path: Path, *args: str) -> Service:
    """Start `tidegate serve` on a free port and wait until it answers. Its log goes to a
    file, not a pipe: a pipe nobody reads would stop it once full."""
    command = [sys.executable, "-m", "tidegate", "--config", str(config_path), "serve"]
    log_path = config_path.parent / f"serve-{secrets.token_hex(4)}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, "--port", "0", *args],
            stderr=log,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "TIDEGATE_CONFIG": ""},
        )
    deadline = time.monotonic() + SERVE_START_SECONDS
    while not (match := re.search(r"dashboard at (http://\S+)", log_path.read_text())):
        if time.monotonic() > deadline or process.poll() is not None:
            break
        time.sleep(0.05)
    if match is None:
        process.kill()
        raise AssertionError(f"serve did not start: {log_path.read_text()}")
    url = match.group(1)
    while time.monotonic() < deadline:
        try:
            httpx2.get(url + "favicon.svg", timeout=2)
            return Service(url, process, log_path)
        except httpx2.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("serve did not answer in time")


def stop_service(service: Service) -> bool:
    """Stop the service as an init system would (SIGTERM); whether it stopped in time by
    itself (uvicorn shuts down and then ends by the same signal)."""
    service.process.send_signal(signal.SIGTERM)
    try:
        service.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()
        return False
    return service.process.returncode in (0, -signal.SIGTERM)


@pytest.fixture
def service(sample: Sample) -> Iterator[Service]:
    """`tidegate serve` on the sample, without a schedule."""
    running = start_service(sample.config_path)
    yield running
    stop_service(running)
