"""The Production panel in a real browser, against a real Voila server: Promote and Rollback with their
confirmation step, the audit log, versions with lineage, the forecast chart, and live metrics by horizon.

One workspace, one Voila server and one page for the module; the tests run in order, each on the
state the previous one left. Screenshots go to ``test-artifacts/``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

from m5ops.pipeline.modeling import WorkspaceData, train_version  # noqa: E402
from m5ops.pipeline.tasks import evaluate  # noqa: E402
from m5ops.stores.audit import AuditLog  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.metrics import MetricStore  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402
from m5ops.stores.serving import ServingStore  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT_MS = 30_000
LIVE = {"avg": 0.92, "naive": 0.81}  # live WRMSSE of each model's complete issue windows


def seed_live(home: Path) -> None:
    """Seven complete issue windows per model, and live MAE at horizon 1 for a few days."""
    metrics = MetricStore(Workspace(home).runs_path)
    for model, value in LIVE.items():
        version = Registry(Workspace(home).registry_path).get(model)["current_version"]
        for issue in range(60, 67):
            metrics.record(issue + 28, "2011-01-01", model, version, {"wrmsse": value}, (issue + 1, issue + 28),
                           source="live", level="all", horizon=0, issue_day=issue)
        for day in range(110, 121):
            metrics.record(day, "2011-01-01", model, version, {"mae": value + day / 1000}, (day, day),
                           source="live", level="all", horizon=1, issue_day=day - 1)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """avg (best backtest, serving) and naive (v1, v2) with live scores, their dashboard, and a page on it."""
    if (reason := B.browser_missing()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("production-browser")
    home = B.make_workspace(tmp / "ws", {"naive": "seasonal_naive", "avg": "moving_average"}, items=1, days=176)
    data = WorkspaceData.open(home)
    for name in ("naive", "avg", "naive"):
        train_version(data, name)
    evaluate(str(home), "seed-evaluation")
    seed_live(home)
    with B.voila(home, tmp / "voila.log") as url, B.chromium() as browser:
        page = B.open_page(browser, viewport=(1500, 1200))
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_selector(".m5-serving-row")
        yield {"home": home, "page": page, "workspace": Workspace(home)}
        page.close(run_before_unload=True)


def serving_row(page, model: str):
    return page.locator(f".m5-serving-{model}")


def wait_summary(page, text: str) -> None:
    page.wait_for_function("(t) => { const el = document.querySelector('.m5-serving-name');"
                           " return el && el.textContent === t; }", arg=text, polling=100)


def test_the_panel_is_at_the_top_and_shows_who_serves_and_why(site):
    page = site["page"]
    order = page.evaluate("() => [...document.querySelectorAll('.m5-production-panel, .m5-models')]"
                          ".map(el => el.classList.contains('m5-production-panel') ? 'production' : 'models')")
    assert order == ["production", "models"]
    wait_summary(page, "avg v1")
    assert "no promotion yet: the best backtest WRMSSE" in page.locator(".m5-serving-why").text_content()
    assert "live WRMSSE 0.92 over 7 complete issue window(s)" in page.locator(".m5-production-summary").text_content()
    assert "m5-role-production" in serving_row(page, "avg").get_attribute("class")
    assert serving_row(page, "avg").locator(".m5-promote").is_disabled()
    assert serving_row(page, "naive").locator(".m5-col-live").text_content() == "0.81"
    assert not serving_row(page, "naive").locator(".m5-rollback").is_disabled()  # v2 replaced v1
    assert page.locator(".m5-forecast-chart .curve path.line").count() >= 1  # the actuals
    assert "no forecast issued yet" in page.locator(".m5-forecast-note").text_content()
    assert page.locator(".m5-audit-table tr.m5-audit-accepted").count() == 3
    page.select_option(".m5-lineage-model select", label="naive")
    page.locator(".m5-lineage-table tr.m5-version-v2.m5-status-current").wait_for()
    lineage = page.locator(".m5-lineage-table tr.m5-version-v2").text_content()
    assert "d_92" in lineage and "accepted" in lineage and "kept" in lineage
    assert page.locator(".m5-lineage-table tr.m5-version-v1.m5-status-retired").count() == 1
    B.screenshot(page, "production-1-rendered")


def test_promote_asks_for_confirmation_then_takes_the_locked_path(site):
    page, workspace = site["page"], site["workspace"]
    row = serving_row(page, "naive")
    row.locator(".m5-promote").click()
    confirm = row.locator(".m5-confirm-serving")
    confirm.wait_for()
    assert confirm.text_content() == "Yes, promote naive v2"
    row.locator(".m5-cancel-serving").click()  # cancelled: nothing changes
    row.locator(".m5-promote").wait_for()
    assert ServingStore(workspace.runs_path).latest() is None
    row.locator(".m5-promote").click()
    confirm.wait_for()
    B.screenshot(page, "production-2-promote-confirm")
    confirm.click()
    page.locator(".m5-message", has_text="promoted naive v2").first.wait_for()
    wait_summary(page, "naive v2")
    latest = ServingStore(workspace.runs_path).latest()
    assert (latest.model, latest.version, latest.actor) == ("naive", "v2", "dashboard")
    entry = AuditLog(workspace.runs_path).last()
    assert (entry.action, entry.actor, entry.previous_model) == ("promoted", "dashboard", "avg")
    page.locator(".m5-audit-table tr.m5-audit-promoted", has_text="naive v2").wait_for()
    page.wait_for_function("() => document.querySelector('.m5-serving-naive').classList.contains('m5-role-production')")
    B.screenshot(page, "production-3-promoted")


def test_rollback_asks_for_confirmation_and_the_serving_version_follows(site):
    page, workspace = site["page"], site["workspace"]
    row = serving_row(page, "naive")
    row.locator(".m5-rollback").click()
    confirm = row.locator(".m5-confirm-serving")
    confirm.wait_for()
    assert confirm.text_content() == "Yes, roll naive back to v1"
    B.screenshot(page, "production-4-rollback-confirm")
    confirm.click()
    page.locator(".m5-message", has_text="rolled naive back from v2 to v1").first.wait_for()
    wait_summary(page, "naive v1")
    assert Registry(workspace.registry_path).get("naive")["current_version"] == "v1"
    entry = AuditLog(workspace.runs_path).last()
    assert (entry.action, entry.actor, entry.version, entry.previous_version) == ("rolled_back", "dashboard", "v1", "v2")
    page.locator(".m5-audit-table tr.m5-audit-rolled_back").wait_for()
    page.wait_for_function("() => document.querySelector('.m5-serving-naive .m5-rollback').disabled")  # v1 was the first
    page.locator(".m5-lineage-table tr.m5-version-v1.m5-status-serving").wait_for()
    B.screenshot(page, "production-5-rolled-back")


def test_the_monitoring_chart_shows_live_metrics_by_horizon(site):
    page = site["page"]
    page.select_option(".m5-metric-choice select", label="MAE")
    page.select_option(".m5-scope-choice select", label="live, horizon 1")
    page.wait_for_function("() => document.querySelectorAll('.m5-metric-chart .curve path.line').length === 2")
    page.wait_for_function("() => [...document.querySelectorAll('.m5-metric-chart text')]"
                           ".some(t => t.textContent.includes('live, horizon 1'))")
    B.screenshot(page, "production-6-live-horizon-1")
    page.select_option(".m5-scope-choice select", label="live, horizon 5")
    page.locator(".m5-chart-note", has_text="live scores come as the days an issued forecast covers arrive").wait_for()
    page.select_option(".m5-scope-choice select", label="backtest (test window)")
    page.wait_for_function("() => document.querySelectorAll('.m5-metric-chart .curve path.line').length === 2")
