"""The dashboard in a real browser: headless Chromium (the system's), driven by Playwright,
against `tidegate serve` running as its own process.

The screenshot of the main flow is saved to ``$TIDEGATE_TEST_ARTIFACTS`` (default
``test-artifacts/`` in the repository), as the CI run's artifact.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVERS
from tests.web.conftest import Sample, Service, make_sample, start_service, stop_service
from tidegate import api

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("TIDEGATE_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)
# Chromium as root in a container, with no network beyond this machine: no sandbox, no
# GPU, and none of its own background connections (each would be refused, many at once).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SLOW = 30_000  # ms: a run on a busy two-core machine

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_SERVERS:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _page(browser: object) -> tuple[object, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    return page, problems


def test_enable_two_entities_export_them_and_watch_the_queue(
    browser: object, sample: Sample, service: Service
) -> None:
    expect = playwright_api.expect
    page, problems = _page(browser)
    page.goto(service.url)
    names = ("ACCOUNT", "SHIPMENT", "SUPPLIER")
    row = {name: page.locator(f'tr[data-entity-row="{name}"]') for name in names}
    expect(row["ACCOUNT"]).to_be_visible()
    expect(row["ACCOUNT"].locator('[data-field="enabled"]')).to_have_text("no")

    # One multi-select action enables two entities (with ongoing capture, the default).
    page.check('input[data-entity="ACCOUNT"]')
    page.check('input[data-entity="SHIPMENT"]')
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    page.click('[data-testid="enable-selected"]')
    expect(page.locator("#message")).to_have_text("enabled: ACCOUNT, SHIPMENT")
    for name in ("ACCOUNT", "SHIPMENT"):
        expect(row[name].locator('[data-field="enabled"]')).to_have_text("yes")
        expect(row[name].locator('[data-field="ongoing"]')).to_have_text("on")
    expect(row["SUPPLIER"].locator('[data-field="enabled"]')).to_have_text("no")

    # Start the initial export and watch it complete.
    page.click('button[data-start="initial"]')
    job = page.locator('tr[data-job="initial"]')
    expect(job.locator('[data-field="state"]')).to_have_text("succeeded", timeout=SLOW)
    expect(job.locator('[data-field="progress"]')).to_contain_text(
        "initial run 1: ACCOUNT, SHIPMENT: 4 record(s)"
    )
    for name in ("ACCOUNT", "SHIPMENT"):
        expect(row[name].locator('[data-field="initial"]')).to_have_text("complete (run 1)")
    expect(row["ACCOUNT"].locator('[data-field="queue"]')).to_have_text("0")

    # The application writes; the queue depth shows it without a reload.
    sample.write("UPDATE account_note SET body = 'edited' WHERE account_id = 1 AND note_no = 1;")
    expect(row["ACCOUNT"].locator('[data-field="queue"]')).to_have_text("1", timeout=SLOW)
    expect(row["SHIPMENT"].locator('[data-field="queue"]')).to_have_text("0")

    # The run is in the history, and the history's chart has drawn it on a time axis.
    history = page.locator('tr[data-run="initial:1"]')
    expect(history.locator('[data-field="status"]')).to_have_text("succeeded")
    expect(page.locator("#rows-chart canvas")).to_have_count(1)
    expect(page.locator("#rows-chart .u-legend")).to_contain_text("initial")

    # And an ongoing export from the dashboard empties the queue again.
    page.click('button[data-start="ongoing"]')
    expect(page.locator('tr[data-job="ongoing"] [data-field="state"]')).to_have_text(
        "succeeded", timeout=SLOW
    )
    expect(row["ACCOUNT"].locator('[data-field="queue"]')).to_have_text("0", timeout=SLOW)
    expect(page.locator("#live-dot")).to_have_class(re.compile(r"\bok\b"))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert not problems, problems
    assert list((sample.exports / "entities").glob("INC_EXPORT_*.json.gz"))


def test_the_login_page_opens_the_dashboard_with_the_token(browser: object, tmp_path: Path) -> None:
    expect = playwright_api.expect
    guarded = make_sample(tmp_path / "guarded", '[serve]\ntoken = "open-sesame-42"\n')
    api.init(guarded.config())
    service = start_service(guarded.config_path)
    try:
        page, problems = _page(browser)
        page.goto(service.url)
        expect(page).to_have_url(re.compile(r"/login$"))
        page.fill("#token", "wrong")
        page.click("button[type=submit]")
        expect(page.locator("#login-error")).to_have_text("the token is wrong")
        page.fill("#token", "open-sesame-42")
        page.click("button[type=submit]")
        expect(page.locator('tr[data-entity-row="ACCOUNT"]')).to_be_visible()
        # The one refusal the page saw was the wrong token's.
        assert all("401" in problem for problem in problems), problems
    finally:
        stop_service(service)


def test_names_from_the_source_are_shown_as_text_never_as_html(
    browser: object, tmp_path: Path
) -> None:
    """A table named like markup: its entity shows by name, and no element is made of it."""
    expect = playwright_api.expect
    hostile = make_sample(tmp_path / "hostile")
    hostile.write('CREATE TABLE "<img src=x onerror=alert(1)>" (id INTEGER PRIMARY KEY);')
    api.init(hostile.config())
    service = start_service(hostile.config_path)
    try:
        page, problems = _page(browser)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(service.url)
        name = "<IMG SRC=X ONERROR=ALERT(1)>"
        row = page.locator(f'tr[data-entity-row="{name}"]')
        expect(row.locator("td.name")).to_have_text(name)
        assert page.locator("#entities img").count() == 0
        assert not dialogs and not problems, (dialogs, problems)
    finally:
        stop_service(service)


def test_a_source_without_init_shows_what_to_run_and_no_start_works(
    browser: object, tmp_path: Path
) -> None:
    expect = playwright_api.expect
    bare = make_sample(tmp_path / "bare")  # no `tidegate init`
    service = start_service(bare.config_path)
    try:
        page, problems = _page(browser)
        page.goto(service.url)
        expect(page.locator("#empty-state")).to_be_visible()
        expect(page.locator("#empty-state")).to_contain_text("tidegate init")
        expect(page.locator("#freshness-state")).to_have_text("Not set up")
        for job in ("tables", "initial", "ongoing", "load"):
            expect(page.locator(f'button[data-start="{job}"]')).to_be_disabled()
        expect(page.locator("#entities-card")).to_be_hidden()
        page.screenshot(path=str(_artifact("dashboard-empty.png")), full_page=True)
        # `tidegate init` from a terminal: the page notices and shows the pipeline.
        api.init(bare.config())
        expect(page.locator('tr[data-entity-row="ACCOUNT"]')).to_be_visible(timeout=SLOW)
        expect(page.locator("#empty-state")).to_be_hidden()
        expect(page.locator('button[data-start="tables"]')).to_be_enabled()
        assert all("409" in problem for problem in problems), problems
    finally:
        stop_service(service)


def test_freshness_load_flags_recent_tables_verify_and_charts(
    browser: object, sample: Sample, service: Service
) -> None:
    """The ops console's top and load panel follow the pipeline: fresh, behind (exported,
    not loaded), failing (a damaged export), fresh again."""
    expect = playwright_api.expect
    page, problems = _page(browser)
    page.goto(service.url)
    banner = page.locator("#freshness")
    flag = page.locator("#load-flag")

    for job in ("tables", "load"):
        page.click(f'button[data-start="{job}"]')
        expect(page.locator(f'tr[data-job="{job}"] [data-field="state"]')).to_have_text(
            "succeeded", timeout=SLOW
        )
    expect(banner).to_have_attribute("data-state", "fresh", timeout=SLOW)
    expect(page.locator("#freshness-state")).to_have_text("Fresh")
    expect(flag).to_be_hidden()
    # Rows per table of the last export, as its manifest counts them.
    first = api.load_position(sample.config()).recent[0]
    for table in first.tables:
        row = page.locator(f'tr[data-folder="{first.folder}"][data-table="{table.table}"]')
        expect(row.locator('[data-field="rows"]')).to_have_text(f"{table.rows:,}")
    expect(page.locator("#lag-chart canvas")).to_have_count(1)

    # Exported, not loaded: behind.
    sample.write("UPDATE account SET balance = 1 WHERE id = 1;")
    page.click('button[data-start="tables"]')
    expect(banner).to_have_attribute("data-state", "behind", timeout=SLOW)
    expect(page.locator("#freshness-text")).to_contain_text("1 complete export(s) wait")
    expect(flag).to_have_text("behind")

    # The tooltip of the rows chart names the runs under the cursor.
    chart = page.locator("#rows-chart .u-over")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box is not None
    tip = page.locator("#rows-chart .chart-tip")
    chart.hover(position={"x": box["width"] / 2, "y": box["height"] / 2})
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("rows")

    # Verify from the dashboard: every export checked, all verified.
    page.click('[data-testid="verify"]')
    expect(page.locator('[data-testid="verify-summary"]')).to_have_text(
        "2 table export(s) and 0 entity run(s) checked: all verified", timeout=SLOW
    )

    # A damaged export: verify names it, the load fails, and both the banner and the load
    # panel say so.
    pending = api.load_position(sample.config()).pending_table_exports[0]
    damaged = next((sample.exports / pending).glob("*.zip"))
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    page.click('[data-testid="verify"]')
    expect(page.locator('[data-testid="verify-summary"]')).to_contain_text("1 problem(s)")
    expect(page.locator("#verify-result li").first).to_contain_text(pending)
    page.click('button[data-start="load"]')
    expect(page.locator('tr[data-job="load"] [data-field="state"]')).to_have_text(
        "failed", timeout=SLOW
    )
    expect(banner).to_have_attribute("data-state", "failing", timeout=SLOW)
    expect(flag).to_have_text("failing")
    expect(page.locator('[data-testid="load-failed"]')).to_contain_text(pending)
    page.screenshot(path=str(_artifact("dashboard-failing.png")), full_page=True)
    assert all("409" in p or "500" in p for p in problems), problems


def test_five_hundred_entities_filter_and_sort(browser: object, tmp_path: Path) -> None:
    expect = playwright_api.expect
    many = make_sample(tmp_path / "many")
    many.write(
        "".join(f"CREATE TABLE item_{n:03} (id INTEGER PRIMARY KEY, v TEXT);" for n in range(497))
    )
    api.init(many.config())
    service = start_service(many.config_path)
    try:
        page, problems = _page(browser)
        page.goto(service.url)
        rows = page.locator("#entities tr")
        expect(page.locator("#entity-count")).to_have_text("500 of 500 entities", timeout=SLOW)
        expect(rows).to_have_count(500)

        page.fill("#entity-filter", "item_04")
        expect(page.locator("#entity-count")).to_have_text("10 of 500 entities")
        expect(rows.first.locator("td.name")).to_have_text("ITEM_040")
        # A filter on a child table finds its entity.
        page.fill("#entity-filter", "shipment_item")
        expect(page.locator("#entity-count")).to_have_text("1 of 500 entities")
        expect(rows.first.locator("td.name")).to_have_text("SHIPMENT")

        page.fill("#entity-filter", "")
        page.click('th[data-sort="name"] button')  # sorted by name already: now descending
        expect(page.locator('th[data-sort="name"]')).to_have_attribute("aria-sort", "descending")
        expect(rows.first.locator("td.name")).to_have_text("SUPPLIER")

        # Select all applies to the rows shown, and the selection survives the refresh.
        page.fill("#entity-filter", "item_49")
        page.check("#select-all")
        expect(page.locator("#selected-count")).to_have_text("7 selected")
        page.wait_for_timeout(2500)  # one overview refresh
        expect(page.locator("#selected-count")).to_have_text("7 selected")
        page.click('[data-testid="enable-selected"]')
        expect(page.locator("#message")).to_contain_text("enabled: ITEM_490, ITEM_491")
        page.fill("#entity-filter", "")
        page.click('th[data-sort="enabled"] button')
        page.click('th[data-sort="enabled"] button')  # descending: enabled first
        expect(rows.nth(6).locator('[data-field="enabled"]')).to_have_text("yes")
        expect(rows.nth(7).locator('[data-field="enabled"]')).to_have_text("no")
        page.screenshot(path=str(_artifact("dashboard-entities.png")), full_page=False)
        assert not problems, problems
    finally:
        stop_service(service)


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
