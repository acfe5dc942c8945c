"""The JSON API, every route, in-process (Starlette's TestClient runs the real app on a real
SQLite source): answers, refusals, and agreement with the CLI's --json."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.web.conftest import Sample
from tidegate import api
from tidegate.cli import app as cli_app
from tidegate.config import Config
from tidegate.lock import job_lock
from tidegate.web import routes_api
from tidegate.web.app import create_app

POST_HEADERS = {"X-Tidegate-Request": "1"}


def client_for(config: Config, **options: Any) -> TestClient:
    options.setdefault("base_url", "http://127.0.0.1:8765")
    return TestClient(create_app(config, run_schedule=False), **options)


@pytest.fixture
def client(sample: Sample) -> Any:
    with client_for(sample.config()) as test_client:
        yield test_client


def wait_for(test_client: TestClient, job: str, seconds: float = 30) -> dict[str, Any]:
    """The job's activity once it is no longer running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        jobs = {j["job"]: j for j in test_client.get("/api/jobs").json()["jobs"]}
        if jobs[job]["state"] != "running":
            return jobs[job]
        time.sleep(0.05)
    raise AssertionError(f"{job} still running after {seconds} s")


def cli_json(sample: Sample, *args: str) -> Any:
    result = CliRunner().invoke(
        cli_app, ["--config", str(sample.config_path), *args, "--json"], env={"TIDEGATE_CONFIG": ""}
    )
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_entities_are_listed_and_enabled_many_at_once(client: TestClient) -> None:
    listed = client.get("/api/entities").json()
    assert [e["name"] for e in listed] == ["ACCOUNT", "SHIPMENT", "SUPPLIER"]
    assert not any(e["enabled"] for e in listed)

    answer = client.post(
        "/api/entities/enable",
        json={"names": ["ACCOUNT", "SHIPMENT"], "ongoing": True},
        headers=POST_HEADERS,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"names": ["ACCOUNT", "SHIPMENT"]}
    by_name = {e["name"]: e for e in client.get("/api/entities").json()}
    assert by_name["ACCOUNT"]["enabled"] and by_name["ACCOUNT"]["ongoing"]
    assert by_name["SHIPMENT"]["enabled"] and not by_name["SUPPLIER"]["enabled"]

    off = client.post(
        "/api/entities/disable",
        json={"names": ["SHIPMENT"], "ongoing_only": True},
        headers=POST_HEADERS,
    )
    assert off.json() == {"names": ["SHIPMENT"]}
    by_name = {e["name"]: e for e in client.get("/api/entities").json()}
    assert by_name["SHIPMENT"]["enabled"] and not by_name["SHIPMENT"]["ongoing"]


def test_initial_export_runs_in_the_background_with_its_outcome(
    client: TestClient, sample: Sample
) -> None:
    client.post("/api/entities/enable", json={"all": True, "ongoing": True}, headers=POST_HEADERS)
    started = client.post("/api/jobs/initial/start", json={}, headers=POST_HEADERS)
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "running"
    ended = wait_for(client, "initial")
    assert ended["state"] == "succeeded", ended
    assert "initial run 1: ACCOUNT, SHIPMENT, SUPPLIER: 5 record(s)" in ended["summary"]
    assert ended["trigger"] == "dashboard"
    assert list((sample.exports / "entities").glob("INIT_EXPORT_*.json.gz"))
    statuses = {e["name"]: e["initial_status"] for e in client.get("/api/entities").json()}
    assert set(statuses.values()) == {"complete"}
    runs = client.get("/api/runs", params={"job": "initial"}).json()
    assert [(r["job"], r["run"], r["status"], r["rows"]) for r in runs] == [
        ("initial", 1, "succeeded", 5)
    ]


def test_every_job_starts_from_the_api_and_the_chain_and_load_show_it(
    client: TestClient, sample: Sample
) -> None:
    for job in ("tables", "load"):
        assert client.post(f"/api/jobs/{job}/start", headers=POST_HEADERS).status_code == 202
        assert wait_for(client, job)["state"] == "succeeded"
    # The load reported its progress against a known total: every row it applied.
    load = next(j for j in client.get("/api/jobs").json()["jobs"] if j["job"] == "load")
    rows = int(re.search(r"\((\d+) row\(s\)\)", load["summary"])[1])  # type: ignore[index]
    assert load["total"] == load["done"] == rows > 0, load
    chain = client.get("/api/chain").json()
    assert chain["exports"] == 1 and chain["pending_changes"] == 0
    assert chain["last_folder"].startswith(f"export_{chain['audit_key']}_")
    position = client.get("/api/position").json()
    assert position["applied"] == 1 and position["last_table_export"] == chain["last_folder"]
    assert position["pending_table_exports"] == [] and position["error"] == ""

    sample.write("UPDATE account SET balance = 99 WHERE id = 1;")
    chain = client.get("/api/chain").json()
    assert chain["pending_changes"] == 1 and chain["lag_seconds"] >= 0
    assert client.post("/api/jobs/tables/start", headers=POST_HEADERS).status_code == 202
    wait_for(client, "tables")
    position = client.get("/api/position").json()
    assert len(position["pending_table_exports"]) == 1  # exported, not loaded yet
    client.post("/api/entities/enable", json={"all": True, "ongoing": True}, headers=POST_HEADERS)
    assert client.post("/api/jobs/ongoing/start", headers=POST_HEADERS).status_code == 202
    assert wait_for(client, "ongoing")["state"] == "succeeded"


def test_a_second_start_of_a_running_job_is_refused(client: TestClient, sample: Sample) -> None:
    # The source is held by another writer, so the export waits (SQLite's busy timeout)
    # and is still running when it is started again.
    blocker = sqlite3.connect(sample.source, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert client.post("/api/jobs/tables/start", headers=POST_HEADERS).status_code == 202
        again = client.post("/api/jobs/tables/start", headers=POST_HEADERS)
        assert again.status_code == 409
        assert again.json()["error"].startswith("job 'tables' is already running")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert wait_for(client, "tables", 90)["state"] == "succeeded"


def test_a_job_another_process_runs_ends_refused(client: TestClient, sample: Sample) -> None:
    db = api.open_source(sample.config())
    try:
        with job_lock(db, "tables"):  # as a cron job's `tidegate export tables` would
            client.post("/api/jobs/tables/start", headers=POST_HEADERS)
            ended = wait_for(client, "tables")
    finally:
        db.engine.dispose()
    assert ended["state"] == "refused"
    assert "already running in another process" in ended["error"]
    assert not sample.exports.exists() or not list(sample.exports.glob("export_*"))


def test_refusals(client: TestClient) -> None:
    without_header = client.post("/api/entities/enable", json={"names": ["ACCOUNT"]})
    assert without_header.status_code == 403
    assert "'x-tidegate-request: 1'" in without_header.json()["error"]
    foreign = client.post(
        "/api/jobs/tables/start",
        headers={**POST_HEADERS, "Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]
    cross_site = client.post(
        "/api/jobs/tables/start", headers={**POST_HEADERS, "Sec-Fetch-Site": "cross-site"}
    )
    assert cross_site.status_code == 403
    for route in (
        "/api/entities/enable",
        "/api/entities/disable",
        "/api/entities/reset",
        "/api/jobs/tables/start",
        "/api/login",
        "/api/logout",
    ):
        answer = client.get(route)
        assert answer.status_code == 405, route
        assert answer.json()["error"] == "Method Not Allowed"
        assert answer.headers["allow"] == "POST", route
    unknown = client.post(
        "/api/entities/enable", json={"names": ["ACCOUNTS"]}, headers=POST_HEADERS
    )
    assert unknown.status_code == 400
    assert "ACCOUNTS" in unknown.json()["error"] and "ACCOUNT" in unknown.json()["error"]
    # Bodies of the right shape that cannot be acted on: 422, with a message.
    neither = client.post("/api/entities/enable", json={}, headers=POST_HEADERS)
    assert neither.status_code == 422 and "name entities" in neither.json()["error"]
    for route in ("enable", "disable", "reset"):
        empty = client.post(f"/api/entities/{route}", json={"names": [""]}, headers=POST_HEADERS)
        assert empty.status_code == 422 and "empty" in empty.json()["error"], route
    bad_body = client.post("/api/entities/reset", json={"names": []}, headers=POST_HEADERS)
    assert bad_body.status_code == 400 and bad_body.json()["error"].startswith("body.names")
    no_such_job = client.post("/api/jobs/dance/start", headers=POST_HEADERS)
    assert no_such_job.status_code == 400
    no_such_page = client.get("/api/nothing")
    assert no_such_page.status_code == 404
    rebound = client.get("/api/entities", headers={"Host": "attacker.example:8765"})
    assert rebound.status_code == 400


def test_a_source_without_init_is_a_clear_refusal(tmp_path: Path) -> None:
    from tests.web.conftest import make_sample

    bare = make_sample(tmp_path / "bare")
    with client_for(bare.config()) as test_client:
        answer = test_client.get("/api/overview")
    assert answer.status_code == 409
    assert answer.json()["hint"] == "run `tidegate init` first"
    assert answer.json()["code"] == "not_initialized"  # what the dashboard's empty state keys on


def test_the_api_and_the_cli_json_agree(client: TestClient, sample: Sample) -> None:
    api.entities_enable(sample.config(), ["ACCOUNT"], ongoing=True)
    api.export_tables(sample.config())
    api.export_initial(sample.config())
    sample.write("INSERT INTO supplier VALUES ('x', 'y');")
    assert client.get("/api/entities").json() == cli_json(sample, "entities", "list")
    assert client.get("/api/runs").json() == cli_json(sample, "runs")
    assert client.get("/api/status").json() == cli_json(sample, "status")
    assert client.get("/api/verify").json() == cli_json(sample, "verify")
    from_api, from_cli = client.get("/api/overview").json(), cli_json(sample, "overview")
    for view in (from_api, from_cli):  # the only values that move with the clock
        view["chain"]["lag_seconds"] = view["freshness"]["lag_seconds"] = 0
    assert from_api == from_cli


def test_the_openapi_document_describes_every_api_route(sample: Sample) -> None:
    app = create_app(sample.config(), run_schedule=False)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        document = client.get("/api/openapi.json").json()
    described = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    routes = {
        (route.path, method)
        for route in routes_api.router.routes
        for method in getattr(route, "methods", ())
    }
    assert len(routes) == 14 and routes == described
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation.get("description") or operation.get("summary"), (method, path)


# URLs in the assets that name something without loading it: SVG's namespace, and the
# project page in uPlot's license banner.
NOT_LOADED = ("http://www.w3.org/2000/svg", "https://github.com/leeoniya/uPlot")


def test_pages_and_assets_are_served_by_tidegate_alone(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    static = Path(__file__).parents[2] / "tidegate" / "web" / "static"
    assets = [path for path in static.rglob("*") if path.is_file()]
    assert static / "vendor" / "uPlot.iife.min.js" in assets
    for asset in assets:
        name = asset.relative_to(static).as_posix()
        if asset.suffix in (".html", ".js", ".css", ".svg"):  # what a page loads
            text = asset.read_text()
            outside = [url for url in _urls(text) if url not in NOT_LOADED]
            assert not outside, f"{name} refers to {outside}"
        assert client.get(f"/static/{name}").status_code == 200


def _urls(text: str) -> list[str]:
    import re

    return re.findall(r"https?://[^\s\"'<>)]+", text)
