"""`/metrics` in Prometheus' text format, and the `/healthz` and `/readyz` probes.

The metrics are read from the source, the target and the location at each scrape (a
custom collector of `prometheus-client`, the official client), so that they are true
whichever process ran the jobs: `serve`, cron, or a person. A part that cannot be read
is reported as down (`tidegate_source_up 0`, `tidegate_target_up 0`) and its series are
left out; the scrape itself never fails. Series are explained in docs/operations.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tidegate import api
from tidegate.activity import JobRunner
from tidegate.config import Config
from tidegate.errors import TidegateError
from tidegate.load.iceberg import IcebergTarget, is_iceberg
from tidegate.load.position import LoadPosition
from tidegate.load.target import Target
from tidegate.model import RunRecord
from tidegate.retention import TableSize

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def scrape(config: Config, runner: JobRunner) -> bytes:
    """Every series, in the text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TidegateCollector(config, runner))
    return generate_latest(registry)


class TidegateCollector(Collector):
    """Reads what the dashboard shows and turns it into series."""

    def __init__(self, config: Config, runner: JobRunner) -> None:
        self.config = config
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        yield from self._service()
        try:
            overview = api.overview(self.config, runs_limit=500)
            pending = api.pending_changes(self.config)
            footprint = api.footprint(self.config)
        except (TidegateError, sa.exc.DBAPIError) as error:
            log.warning("metrics: the source cannot be read: %s", _message(error))
            yield _gauge("tidegate_source_up", "1 when the source could be read", 0)
            return
        yield _gauge("tidegate_source_up", "1 when the source could be read", 1)
        yield from _source(overview, pending, footprint)
        yield from _runs(overview.runs)
        position = overview.load
        yield _gauge(
            "tidegate_target_up", "1 when the target could be read", 0 if position.error else 1
        )
        if not position.error:
            yield from _target(overview, position)

    def _service(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "tidegate_service_runs",
            "Runs this serve process started, by job and outcome",
            labels=["job", "outcome"],
        )
        for (job, outcome), count in sorted(self.runner.outcomes().items()):
            runs.add_metric([job, outcome], count)
        yield runs


def _source(
    overview: api.Overview, pending: dict[str, int], footprint: list[TableSize]
) -> Iterator[Metric]:
    changes = GaugeMetricFamily(
        "tidegate_pending_changes",
        "Committed changes no table export has claimed, per captured table",
        labels=["table"],
    )
    for table, count in sorted(pending.items()):
        changes.add_metric([table], count)
    yield changes
    chain = overview.chain
    yield _gauge(
        "tidegate_export_lag_seconds",
        "Age of the oldest change no table export holds yet (0 when none is pending)",
        chain.lag_seconds,
    )
    yield _gauge("tidegate_table_exports", "Table-export folders published", chain.exports)
    queue = GaugeMetricFamily(
        "tidegate_entity_queue_depth",
        "Entities queued for the next ongoing export, per enabled entity",
        labels=["entity"],
    )
    for status in overview.entities:
        if status.enabled:
            queue.add_metric([status.entity.name], status.queue_depth)
    yield queue
    rows = GaugeMetricFamily(
        "tidegate_source_table_rows",
        "Rows of tidegate's own tables in the source",
        labels=["table"],
    )
    size = GaugeMetricFamily(
        "tidegate_source_table_bytes",
        "Bytes of tidegate's own tables in the source (where the database tells)",
        labels=["table"],
    )
    for own in footprint:
        rows.add_metric([own.table], own.rows)
        if own.bytes is not None:
            size.add_metric([own.table], own.bytes)
    yield rows
    yield size


def _target(overview: api.Overview, position: LoadPosition) -> Iterator[Metric]:
    yield _gauge(
        "tidegate_exports_not_loaded",
        "Complete exports (table folders and entity runs) the target has not applied",
        len(position.pending_table_exports) + len(position.pending_entity_runs),
    )
    yield _gauge(
        "tidegate_end_to_end_lag_seconds",
        "How far the target is behind the source: the age of the newest data time the target "
        "holds, while a change or an export is waiting for it (0 when none is)",
        overview.freshness.lag_seconds,
    )


def _runs(history: list[RunRecord]) -> Iterator[Metric]:
    """The last run of each job (from the run history, loads included), and how many runs
    of each status the history holds."""
    last: dict[str, RunRecord] = {}
    counts: dict[tuple[str, str], int] = {}
    for run in history:  # newest first
        last.setdefault(run.job, run)
        counts[(run.job, run.status)] = counts.get((run.job, run.status), 0) + 1
    families = {
        "succeeded": _labelled("succeeded", "1 when the job's last run succeeded"),
        "seconds": _labelled("duration_seconds", "Duration of the job's last run"),
        "rows": _labelled("rows", "Rows (or records) of the job's last run"),
        "bytes": _labelled("bytes", "Bytes written by the job's last run"),
        "started": _labelled("start_timestamp_seconds", "When the job's last run started"),
    }
    for job, run in sorted(last.items()):
        families["succeeded"].add_metric([job], 1 if run.status == "succeeded" else 0)
        if run.duration_seconds is not None:
            families["seconds"].add_metric([job], run.duration_seconds)
        families["rows"].add_metric([job], run.rows)
        families["bytes"].add_metric([job], run.bytes)
        families["started"].add_metric([job], run.started_at.timestamp())
    yield from families.values()
    recorded = GaugeMetricFamily(
        "tidegate_runs_recorded",
        "Runs in the run history (kept for [capture] keep), by job and status",
        labels=["job", "status"],
    )
    for (job, status), count in sorted(counts.items()):
        recorded.add_metric([job, status], count)
    yield recorded


def ready(config: Config) -> tuple[bool, dict[str, str]]:
    """Whether the source and the target (when one is configured) answer: a connection and
    a trivial query each. Returns (all ready, what each said)."""
    checks: dict[str, str] = {}
    try:
        with api.source(config) as db, db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["source"] = "ok"
    except (TidegateError, sa.exc.DBAPIError) as error:
        checks["source"] = _message(error)
    if config.target.url:
        url = config.target.url
        target = IcebergTarget(url, config.target) if is_iceberg(url) else Target(url)
        try:
            target.ping()
            checks["target"] = "ok"
        except TidegateError as error:
            checks["target"] = _message(error)
        finally:
            target.dispose()
    return all(v == "ok" for v in checks.values()), checks


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(name: str, documentation: str) -> GaugeMetricFamily:
    """`tidegate_last_run_<name>`, by job."""
    return GaugeMetricFamily(f"tidegate_last_run_{name}", documentation, labels=["job"])


def _message(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(getattr(error, "orig", error))
    return " ".join(text.split())[:300]
