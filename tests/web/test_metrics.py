"""`/metrics`, `/healthz` and `/readyz` (SPEC, "Operations"): scraped with
prometheus-client's own text parser; the lags move as writes wait and as exports and
loads catch up; the probes answer under the same rules as every page."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.web.conftest import Sample
from tests.web.test_api import POST_HEADERS, client_for, wait_for
from tidegate import api


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_the_lags_move_as_writes_wait_and_loads_catch_up(sample: Sample) -> None:
    with client_for(sample.config()) as client:
        api.export_tables(sample.config())
        api.load(sample.config())
        caught_up = scrape(client)
        assert caught_up[("tidegate_source_up", ())] == 1
        assert caught_up[("tidegate_target_up", ())] == 1
        assert caught_up[("tidegate_end_to_end_lag_seconds", ())] == 0
        assert caught_up[("tidegate_export_lag_seconds", ())] == 0
        assert caught_up[("tidegate_pending_changes", (("table", "account"),))] == 0
        assert caught_up[("tidegate_last_run_succeeded", (("job", "load"),))] == 1
        assert caught_up[("tidegate_last_run_rows", (("job", "tables"),))] > 0
        assert caught_up[("tidegate_source_table_rows", (("table", "tidegate_capture"),))] == 5
        assert freshness(client) == {
            "state": "fresh",
            "exports_waiting": 0,
            "lag_seconds": 0,
            "problem": "",
        }

        sample.write(
            "UPDATE account SET balance = balance + 1; INSERT INTO supplier VALUES ('x', 'y');"
        )
        time.sleep(1.1)
        waiting = scrape(client)
        assert waiting[("tidegate_pending_changes", (("table", "account"),))] == 2
        assert waiting[("tidegate_export_lag_seconds", ())] >= 1
        assert waiting[("tidegate_end_to_end_lag_seconds", ())] >= 1

        assert client.post("/api/jobs/tables/start", headers=POST_HEADERS).status_code == 202
        assert wait_for(client, "tables")["state"] == "succeeded"
        exported = scrape(client)
        assert exported[("tidegate_export_lag_seconds", ())] == 0
        assert exported[("tidegate_exports_not_loaded", ())] == 1
        assert exported[("tidegate_end_to_end_lag_seconds", ())] >= 1  # exported, not loaded
        behind = freshness(client)  # the dashboard's banner says the same
        assert behind["state"] == "behind" and behind["exports_waiting"] == 1
        assert behind["lag_seconds"] >= 1
        assert (
            exported[("tidegate_service_runs_total", (("job", "tables"), ("outcome", "succeeded")))]
            == 1
        )

        assert client.post("/api/jobs/load/start", headers=POST_HEADERS).status_code == 202
        assert wait_for(client, "load")["state"] == "succeeded"
        loaded = scrape(client)
        assert loaded[("tidegate_end_to_end_lag_seconds", ())] == 0
        assert loaded[("tidegate_exports_not_loaded", ())] == 0
        assert freshness(client)["state"] == "fresh"


def freshness(client: Any) -> dict[str, Any]:
    answer: dict[str, Any] = client.get("/api/overview").json()["freshness"]
    return answer


def test_a_source_that_cannot_be_read_is_reported_down(sample: Sample, tmp_path: Any) -> None:
    """The scrape still answers: the source and its series are reported down."""
    with client_for(sample.config()) as client:
        sample.source.rename(tmp_path / "moved.db")
        scraped = scrape(client)
        assert scraped[("tidegate_source_up", ())] == 0
        assert not any(name == "tidegate_pending_changes" for name, _ in scraped)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["target"] == "ok" and ready.json()["source"] != "ok"


def test_health_and_readiness(sample: Sample) -> None:
    with client_for(sample.config()) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"source": "ok", "target": "ok"}


def test_the_probes_answer_on_loopback_only_without_a_token(sample: Sample) -> None:
    with client_for(sample.config(), base_url="http://example.com") as client:
        for path in ("/metrics", "/healthz", "/readyz"):
            assert client.get(path).status_code == 400
