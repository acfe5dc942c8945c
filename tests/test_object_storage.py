"""Exports on object storage, against a real S3 API server: moto's, in a process of its own
on loopback, reached by the CLI in processes of their own (as a user runs them, with the
credentials in the environment).

Exports are written to a bucket, verified and loaded from it; a bucket that does not exist
is refused and never created; missing credentials and an endpoint that cannot be reached
are one clear line each. An Iceberg warehouse in a bucket, configured in
[target.iceberg], is loaded and read back; in a missing bucket it is refused, in one line."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import assert_one_error
from tests.web.conftest import SCHEMA

boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")
pytest.importorskip("moto")

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# No credentials from this machine's files or from an instance metadata service.
ISOLATED = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
}
TABLES = ("account", "account_note", "shipment", "shipment_item", "supplier")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server, started for this module and stopped after it."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **CREDENTIALS},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("the S3 server (moto) did not start", pytrace=False)
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def _s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def _buckets(endpoint: str) -> set[str]:
    return {bucket["Name"] for bucket in _s3(endpoint).list_buckets()["Buckets"]}


def _project(tmp_path: Path, location: str, endpoint: str) -> Path:
    """A SQLite source with the sample schema and a config that exports to `location`."""
    with sqlite3.connect(tmp_path / "source.db") as conn:
        conn.executescript(SCHEMA)
    (tmp_path / "tidegate.toml").write_text(
        f'[source]\nurl = "sqlite:///{tmp_path / "source.db"}"\n'
        f'[output]\nlocation = "{location}"\n'
        f'storage_options = {{ endpoint_url = "{endpoint}" }}\n'
        f'[target]\nurl = "sqlite:///{tmp_path / "target.db"}"\n'
    )
    return tmp_path


def _cli(folder: Path, *args: str, credentials: bool = True) -> tuple[int, str, str]:
    """The CLI as its own process in `folder`, with only the test's AWS settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(ISOLATED, **(CREDENTIALS if credentials else {}), TIDEGATE_CONFIG="")
    done = subprocess.run(
        [sys.executable, "-m", "tidegate", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return done.returncode, done.stdout, done.stderr


def _ok(folder: Path, *args: str) -> str:
    code, out, err = _cli(folder, *args)
    assert code == 0, err
    return out


def _rows(database: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        return sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)


def _assert_target_equals_source(folder: Path, tables: tuple[str, ...] = TABLES) -> None:
    for table in tables:
        assert _rows(folder / "target.db", table) == _rows(folder / "source.db", table), table


def test_exports_written_to_a_bucket_are_verified_and_loaded_from_it(
    tmp_path: Path, s3_endpoint: str
) -> None:
    _s3(s3_endpoint).create_bucket(Bucket="lake")
    folder = _project(tmp_path, "s3://lake/tidegate/exports", s3_endpoint)
    _ok(folder, "init")
    _ok(folder, "export", "tables")
    _ok(folder, "entities", "enable", "ACCOUNT")
    _ok(folder, "export", "initial")
    assert "all verified" in _ok(folder, "verify")
    _ok(folder, "load", "--only", "tables")
    _assert_target_equals_source(folder)

    # Changes and deletes, exported and loaded again from the bucket.
    with sqlite3.connect(folder / "source.db") as conn:
        conn.executescript(
            "UPDATE account SET balance = 99.25 WHERE id = 2;"
            "DELETE FROM shipment_item WHERE line = 2;"
            "INSERT INTO supplier VALUES ('new', 'Newco');"
        )
    _ok(folder, "export", "tables")
    _ok(folder, "load", "--only", "tables")
    _assert_target_equals_source(folder)

    # What the bucket holds: two complete folders and the entity run, nothing half-written.
    keys = [
        item["Key"]
        for page in _s3(s3_endpoint).get_paginator("list_objects_v2").paginate(Bucket="lake")
        for item in page.get("Contents", [])
    ]
    folders = {key.split("/")[2] for key in keys if key.split("/")[2].startswith("export_")}
    assert len(folders) == 2, keys
    for name in folders:
        manifest = f"tidegate/exports/{name}/{name}.extracted.xml"
        assert manifest in keys and f"tidegate/exports/{name}/{name}.zip" in keys
    assert any("INIT_EXPORT_1" in key for key in keys), keys
    assert not any(".tidegate-staging/" in key and not key.endswith("/") for key in keys), keys


def test_a_bucket_that_does_not_exist_is_refused_never_created(
    tmp_path: Path, s3_endpoint: str
) -> None:
    folder = _project(tmp_path, "s3://no-such-bucket/exports", s3_endpoint)
    _ok(folder, "init")
    before = _buckets(s3_endpoint)
    code, _out, err = _cli(folder, "export", "tables")
    assert code == 1
    assert_one_error(
        err,
        r"Error: .*\[output\] location: bucket 'no-such-bucket' of s3://no-such-bucket/exports "
        r"does not exist \(tidegate never creates a bucket\)",
    )
    assert "create the bucket" in err
    assert _buckets(s3_endpoint) == before  # not created
    # Refused before anything was claimed: once the bucket is made, the same export is
    # the stream's first.
    _s3(s3_endpoint).create_bucket(Bucket="no-such-bucket")
    assert "snapshot" in _ok(folder, "export", "tables")


def test_missing_credentials_are_one_line(tmp_path: Path, s3_endpoint: str) -> None:
    _s3(s3_endpoint).create_bucket(Bucket="guarded")
    folder = _project(tmp_path, "s3://guarded/exports", s3_endpoint)
    _ok(folder, "init")
    for command in (["export", "tables"], ["verify"], ["load"]):
        code, _out, err = _cli(folder, *command, credentials=False)
        assert code == 1, (command, err)
        assert_one_error(err, r"Error: .*: cannot .* in s3://guarded/exports: .*credentials.*")
        assert "AWS_ACCESS_KEY_ID" in err and "unexpected" not in err


def test_an_endpoint_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    folder = _project(tmp_path, "s3://lake/exports", closed)
    _ok(folder, "init")
    code, _out, err = _cli(folder, "export", "tables")
    assert code == 1
    assert_one_error(err, r"Error: .*: cannot .* in s3://lake/exports: Could not connect .*")
    assert "endpoint" in err.splitlines()[-1]


def _iceberg_project(tmp_path: Path, endpoint: str, bucket: str) -> Path:
    """A SQLite source exporting to a local folder, loading into an Iceberg warehouse whose
    catalog is local and whose data is in `bucket`, with its keys in the config."""
    folder = _project(tmp_path, str(tmp_path / "exports"), endpoint)
    config = (folder / "tidegate.toml").read_text().split("[target]")[0]
    (folder / "tidegate.toml").write_text(
        config + f'[target]\nurl = "iceberg:///{tmp_path / "catalog"}"\nschema = "lake"\n'
        "[target.iceberg]\n"
        f'warehouse = "s3://{bucket}/warehouse"\n'
        f's3.endpoint = "{endpoint}"\n'
        f's3.region = "{CREDENTIALS["AWS_DEFAULT_REGION"]}"\n'
        f'"s3.access-key-id" = "{CREDENTIALS["AWS_ACCESS_KEY_ID"]}"\n'
        's3.secret-access-key = "iceberg-secret"\n'
    )
    return folder


def _iceberg_tables(folder: Path, endpoint: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the warehouse's namespace `lake`, read by pyiceberg, sorted."""
    from pyiceberg.catalog import load_catalog

    catalog = load_catalog(
        "tidegate",  # a SQL catalog keeps each catalog name's tables apart
        type="sql",
        uri=f"sqlite:///{folder / 'catalog' / 'catalog.db'}",
        **{"s3.endpoint": endpoint, "s3.region": CREDENTIALS["AWS_DEFAULT_REGION"]},
        **{"s3.access-key-id": "testing", "s3.secret-access-key": "testing"},
    )
    found = {}
    for _namespace, name in catalog.list_tables("lake"):
        rows = catalog.load_table(("lake", name)).scan().to_arrow().to_pylist()
        found[name] = sorted((tuple(row.values()) for row in rows), key=repr)
    return found


def test_an_iceberg_warehouse_on_a_bucket(tmp_path: Path, s3_endpoint: str) -> None:
    """Tables in a bucket, catalog properties in [target.iceberg] (dotted names quoted or
    not), the namespace from [target] schema; the secret never shown."""
    pytest.importorskip("pyiceberg")
    _s3(s3_endpoint).create_bucket(Bucket="icelake")
    folder = _iceberg_project(tmp_path, s3_endpoint, "icelake")
    _ok(folder, "init")
    for change in ("", "UPDATE account SET balance = 7.5 WHERE id = 1; DELETE FROM supplier;"):
        with sqlite3.connect(folder / "source.db") as conn:
            conn.executescript(change)
        _ok(folder, "export", "tables")
        out = _ok(folder, "load", "--only", "tables")
        assert "iceberg-secret" not in out
        held = _iceberg_tables(folder, s3_endpoint)
        assert set(held) == set(TABLES)
        for table in TABLES:
            assert held[table] == _rows(folder / "source.db", table), table
    keys = [item["Key"] for item in _s3(s3_endpoint).list_objects_v2(Bucket="icelake")["Contents"]]
    assert any(key.startswith("warehouse/lake/account/data/") for key in keys), keys
    assert "iceberg-secret" not in _ok(folder, "status")


def test_an_iceberg_warehouse_in_a_missing_bucket_is_one_line_never_created(
    tmp_path: Path, s3_endpoint: str
) -> None:
    folder = _iceberg_project(tmp_path, s3_endpoint, "no-such-lake")
    _ok(folder, "init")
    _ok(folder, "export", "tables")
    before = _buckets(s3_endpoint)
    code, _out, err = _cli(folder, "load")
    assert code == 1
    assert_one_error(err, r"Error: target iceberg:///.*: .*(bucket|Bucket|NoSuchBucket).*")
    assert "iceberg-secret" not in err and "unexpected" not in err
    assert _buckets(s3_endpoint) == before
