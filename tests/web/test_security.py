"""Who may use the service: tokens, the login cookie, cross-site requests, the listening
address, and no password or token in any answer."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import _pg_source
from tests.web.conftest import Sample, make_sample, start_service, stop_service
from tidegate import api, runs
from tidegate.config import load_config
from tidegate.runs import RunCounters
from tidegate.web.app import create_app
from tidegate.web.security import COOKIE

TOKEN = "correct-horse-battery-staple"
POST_HEADERS = {"X-Tidegate-Request": "1"}


@pytest.fixture
def guarded(tmp_path: Path) -> Any:
    sample = make_sample(tmp_path / "guarded", f'[serve]\ntoken = "{TOKEN}"\n')
    api.init(sample.config())
    with TestClient(create_app(sample.config(), run_schedule=False)) as client:
        yield client


def test_without_the_token_nothing_but_the_login_page_answers(guarded: TestClient) -> None:
    refused = guarded.get("/api/entities")
    assert refused.status_code == 401
    assert "Authorization: Bearer" in refused.json()["error"]
    page = guarded.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert guarded.get("/login").status_code == 200
    assert guarded.get("/static/app.js").status_code == 200
    wrong = guarded.get("/api/entities", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = guarded.get("/api/entities", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and len(right.json()) == 3
    # The token does not lift the cross-site rule.
    no_header = guarded.post("/api/jobs/tables/start", headers={"Authorization": f"Bearer {TOKEN}"})
    assert no_header.status_code == 403


def test_logging_in_sets_a_cookie_that_stands_for_the_token(guarded: TestClient) -> None:
    wrong = guarded.post("/api/login", json={"token": "guess"}, headers=POST_HEADERS)
    assert wrong.status_code == 401 and wrong.json()["error"] == "the token is wrong"
    assert COOKIE not in guarded.cookies
    right = guarded.post("/api/login", json={"token": TOKEN}, headers=POST_HEADERS)
    assert right.status_code == 204
    set_cookie = right.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    assert TOKEN not in set_cookie
    assert guarded.get("/api/entities").status_code == 200
    assert guarded.get("/", follow_redirects=False).status_code == 200
    guarded.post("/api/logout", headers=POST_HEADERS)
    guarded.cookies.clear()
    guarded.cookies.set(COOKIE, "forged")
    assert guarded.get("/api/entities").status_code == 401


def test_a_login_post_from_another_site_is_refused(guarded: TestClient) -> None:
    forged = guarded.post(
        "/api/login",
        json={"token": TOKEN},
        headers={**POST_HEADERS, "Origin": "https://evil.example"},
    )
    assert forged.status_code == 403


def _one_error_line(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(pattern), lines
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("Hint: "))


def _serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidegate", "--config", str(config), "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TIDEGATE_CONFIG": ""},
    )


def test_serve_refuses_a_public_address_without_a_token(sample: Sample) -> None:
    result = _serve(sample.config_path, "--host", "0.0.0.0", "--port", "0")
    _one_error_line(result, "Error: [serve] host '0.0.0.0' is reachable from other machines")


def test_serve_says_when_its_port_is_taken(sample: Sample) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(sample.config_path, "--port", str(port))
    _one_error_line(result, f"Error: [serve] cannot listen on 127.0.0.1:{port}")


def test_serve_on_a_public_address_requires_the_token(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "public", f'[serve]\ntoken = "{TOKEN}"\n')
    api.init(sample.config())
    service = start_service(sample.config_path, "--host", "0.0.0.0")
    try:
        port = service.url.rsplit(":", 1)[1].strip("/")
        here = f"http://127.0.0.1:{port}"
        assert httpx2.get(f"{here}/api/entities").status_code == 401
        answer = httpx2.get(f"{here}/api/entities", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
    finally:
        stop_service(service)


SOURCE_SECRET = "Source-Secret-4711"
TARGET_SECRET = "Target-Secret-0815"


def test_no_answer_shows_a_password_or_the_token(tmp_path: Path, pg_database: str) -> None:
    """A PostgreSQL source and target whose URLs carry passwords (trust authentication
    ignores them), runs that fail with the target's URL in their error, and every page
    and answer searched for the secrets."""
    source = _pg_source(tmp_path, pg_database)
    url = sa.make_url(source.url).set(password=SOURCE_SECRET)
    source.url = url.render_as_string(hide_password=False)
    source.create(sa.Table("item", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)))
    missing_target = url.set(database="no_such_database_here", password=TARGET_SECRET)
    (tmp_path / "tidegate.toml").write_text(
        f'[serve]\ntoken = "{TOKEN}"\n'
        f'[target]\nurl = "{missing_target.render_as_string(hide_password=False)}"\n'
    )
    config = load_config(
        tmp_path / "tidegate.toml",
        [
            f"source.url={source.url}",
            f"source.schema={source.schema}",
            f"output.location={tmp_path / 'exports'}",
        ],
        environ={},
    )
    api.init(config)
    # A run whose error text carries a password, as some driver's message might.
    db = api.open_source(config)
    record = runs.start(db, "claim")
    runs.finish(db, record, "failed", RunCounters(), f"cannot log in with {SOURCE_SECRET}")
    db.engine.dispose()
    answers: list[str] = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(
        create_app(config, run_schedule=False), base_url="http://127.0.0.1:8765", headers=auth
    ) as client:
        for job in ("tables", "load"):
            client.post(f"/api/jobs/{job}/start", headers=POST_HEADERS)
            _wait(client, job)
        jobs = client.get("/api/jobs").json()["jobs"]
        assert {j["job"]: j["state"] for j in jobs}["load"] == "failed"
        for path in (
            "/",
            "/login",
            "/api/overview",
            "/api/entities",
            "/api/chain",
            "/api/position",
            "/api/status",
            "/api/runs",
            "/api/verify",
            "/api/jobs",
            "/api/openapi.json",
            "/static/app.js",
        ):
            answers.append(client.get(path).text)
        answers.append(client.post("/api/login", json={"token": "x"}, headers=POST_HEADERS).text)
        answers.append(client.post("/api/login", json={"token": 1}, headers=POST_HEADERS).text)
    everything = "\n".join(answers)
    assert "no_such_database_here" in everything  # the failures are shown...
    assert "cannot log in with ***" in everything
    for secret in (SOURCE_SECRET, TARGET_SECRET, TOKEN):
        assert secret not in everything  # ...without the secrets
    source.dispose()


def _wait(client: TestClient, job: str) -> None:
    import time

    for _ in range(600):
        states = {j["job"]: j["state"] for j in client.get("/api/jobs").json()["jobs"]}
        if states[job] != "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"{job} did not finish")


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def _answer_status(sock: socket.socket) -> int:
    sock.settimeout(30)
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1])


def _post_head(port: str, path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Tidegate-Request: 1\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_an_oversized_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "bodies", f'[serve]\ntoken = "{TOKEN}"\n')
    api.init(sample.config())
    service = start_service(sample.config_path)
    port = service.url.rsplit(":", 1)[1].strip("/")
    try:
        before = _rss_kib(service.process.pid)
        # A declared gigabyte to the login (before any token) is refused on its headers.
        with socket.create_connection(("127.0.0.1", int(port))) as sock:
            sock.sendall(_post_head(port, "/api/login", f"Content-Length: {1 << 30}\r\n"))
            sock.sendall(b"{" + b" " * 65536)
            assert _answer_status(sock) == 413
        # A chunked body is cut off once past the limit: the server answers while the
        # client could still send 64 MiB more.
        with socket.create_connection(("127.0.0.1", int(port))) as sock:
            sock.sendall(_post_head(port, "/api/login", "Transfer-Encoding: chunked\r\n"))
            chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
            sent = 0
            sock.settimeout(30)
            with pytest.raises(OSError):  # the server closes once it has answered
                for _ in range(1024):
                    sock.sendall(chunk)
                    sent += 0x10000
            assert sent < 8 * 1024 * 1024
            assert _answer_status(sock) == 413
        assert _rss_kib(service.process.pid) - before < 32 * 1024
        # A body within the limit is served as before: a wrong token is 401, not 413.
        answer = httpx2.post(
            f"{service.url}api/login", json={"token": "x" * 100_000}, headers=POST_HEADERS
        )
        assert answer.status_code == 401
        answer = httpx2.post(
            f"{service.url}api/login", json={"token": "x" * 300_000}, headers=POST_HEADERS
        )
        assert answer.status_code == 413
        assert "at most 262,144 bytes" in answer.json()["error"]
    finally:
        stop_service(service)
