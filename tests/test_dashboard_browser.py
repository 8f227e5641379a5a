"""The dashboard in a real browser, against a real Voila server and a real runner.

One workspace, one runner, one Voila server and one page for the whole module: the tests run
in order and each builds on the state the previous one left (a trained model, a created one,
a paused one, a deleted one). Every state is kept as a screenshot under ``test-artifacts/``.
Debian's chromium is driven by Playwright; requests that leave 127.0.0.1 are aborted.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

from m5ops.pipeline.modeling import FIT_PART  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402
from m5ops.stores.runs import RunStore  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
MODELS = {"naive": "seasonal_naive", "avg": "moving_average"}
WAIT_MS = 30_000
RUN_WAIT_MS = 150_000  # a simulated day on a loaded 2-core machine


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The workspace, its runner and its dashboard, and a chromium page on it."""
    if (reason := B.browser_missing()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("dash-browser")
    home = B.make_workspace(tmp / "ws", MODELS, items=1, days=176)
    B.seed_history(home, days=10, versions=False)  # a chart to draw; the runner trains for real
    env = B.plugin_env()  # the gated test kind, for the progress test at the end
    with B.runner(home, tmp / "runner.log", day_seconds=3600, env=env) as runner, \
            B.voila(home, tmp / "voila.log", env=env) as url, B.chromium() as browser:
        page = B.open_page(browser)
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_selector(".m5-model-row")
        yield {"home": home, "page": page, "runner": runner, "logs": tmp, "env": env}
        page.close(run_before_unload=True)


def needs_runner(site) -> None:
    if site["runner"] is None:
        pytest.skip("m5ops.orchestration.runner is not there yet: the request was checked as queued only")


def row(page, name: str):
    return page.locator(f".m5-model-{name}")


def cell_text(page, name: str, column: str) -> str:
    return row(page, name).locator(f".m5-col-{column}").text_content()


def wait_cell(page, name: str, column: str, text: str, timeout: float = WAIT_MS) -> None:
    """Wait for a model row's cell to read ``text`` (the cell is re-rendered on every change)."""
    page.wait_for_function(
        "([sel, text]) => { const el = document.querySelector(sel); return el && el.textContent === text; }",
        arg=[f".m5-model-{name} .m5-col-{column}", text], timeout=timeout, polling=100)


def message(page, contains: str) -> None:
    """Wait for an outcome message containing ``contains``."""
    page.locator(".m5-message", has_text=contains).first.wait_for()


def metric_lines(page) -> int:
    """Lines drawn in the metric chart (the legend's samples are not counted)."""
    return page.locator(".m5-metric-chart .curve path.line").count()


def test_page_renders_the_model_table_and_one_metric_line_per_model(site):
    page = site["page"]
    assert page.locator(".m5-model-row").count() == len(MODELS)
    page.wait_for_function("(n) => document.querySelectorAll('.m5-metric-chart .curve path.line').length === n",
                           arg=len(MODELS))
    legend = page.locator(".m5-metric-chart .g_legend text").all_text_contents()
    assert set(MODELS) <= {t.strip() for t in legend}
    assert "d_120" in page.locator(".m5-today").text_content()
    assert page.locator(".m5-totals-chart .curve path.line").count() == 1
    if site["runner"] is not None:
        page.locator(".m5-runner-alive").wait_for()
    B.screenshot(page, "dashboard-1-rendered")
    page.select_option(".m5-metric-choice select", label="MAE")  # another metric: read and drawn
    page.wait_for_function("() => [...document.querySelectorAll('.m5-metric-chart text')]"
                           ".some(t => t.textContent.trim() === 'MAE')")
    assert metric_lines(page) == len(MODELS)


def test_train_now_leads_to_a_new_version_in_the_table(site):
    page = site["page"]
    assert cell_text(page, "naive", "versions") == "0"
    row(page, "naive").locator(".m5-train").click()
    message(page, "queued training of naive")
    if site["runner"] is None:
        page.locator(".m5-runs tr.m5-status-queued", has_text="naive").wait_for()
        needs_runner(site)
    wait_cell(page, "naive", "request", "training")
    B.screenshot(page, "dashboard-2-training")
    wait_cell(page, "naive", "versions", "1 (v1)", timeout=RUN_WAIT_MS)
    wait_cell(page, "naive", "request", "")
    assert page.locator(".m5-runs tr.m5-status-succeeded", has_text="naive").count() >= 1
    B.screenshot(page, "dashboard-3-trained")


def test_create_form_refuses_a_bad_name_and_accepts_a_good_one(site):
    page = site["page"]
    page.fill(".m5-create-name input", "Bad Name!")
    page.select_option(".m5-create-kind select", "seasonal_naive")
    page.locator(".m5-create-params .m5-param-season_length input, .m5-create-params input").first.wait_for()
    page.click("button.m5-create-submit")
    page.locator(".m5-error-name", has_text="invalid model name").wait_for()
    message(page, "Create refused")
    B.screenshot(page, "dashboard-4-create-refused")
    assert page.locator(".m5-model-row").count() == len(MODELS)
    assert "Bad Name!" not in Registry(site["home"] / "registry.json").models()
    page.fill(".m5-create-name input", "fresh")
    page.click("button.m5-create-submit")
    row(page, "fresh").wait_for()
    message(page, "created model fresh")
    assert page.locator(".m5-error-name").text_content() == ""
    assert Registry(site["home"] / "registry.json").get("fresh")["kind"] == "seasonal_naive"
    B.screenshot(page, "dashboard-5-created")


def test_pause_shows_the_model_paused_and_the_runner_skips_it(site):
    page, home = site["page"], site["home"]
    row(page, "fresh").locator(".m5-toggle").click()
    wait_cell(page, "fresh", "state", "paused")
    # the button is a widget of its own, relabelled by a message of its own
    page.wait_for_function("() => { const b = document.querySelector('.m5-model-fresh .m5-toggle');"
                           " return b && b.textContent === 'Resume'; }", timeout=WAIT_MS, polling=100)
    assert "m5-state-paused" in row(page, "fresh").get_attribute("class")
    message(page, "paused fresh")
    B.screenshot(page, "dashboard-6-paused")
    needs_runner(site)
    # a simulated day: fresh (paused, never trained) would be due; avg (active, never trained) is
    page.click("button.m5-run-day")
    message(page, "queued a simulated day")
    wait_cell(page, "avg", "versions", "1 (v1)", timeout=RUN_WAIT_MS)
    page.wait_for_function("() => !document.querySelector('.m5-runs tr.m5-status-running, .m5-runs tr.m5-status-queued')",
                           timeout=RUN_WAIT_MS, polling=200)
    # the header is its own widget, refreshed by its own message
    page.wait_for_function("() => document.querySelector('.m5-today').textContent.startsWith('today d_121')",
                           timeout=RUN_WAIT_MS, polling=200)
    assert cell_text(page, "fresh", "versions") == "0" and cell_text(page, "fresh", "state") == "paused"
    assert RunStore(home / "runs.db").runs(model="fresh", limit=None) == []
    B.screenshot(page, "dashboard-7-day-run-paused-skipped")


def test_delete_removes_the_model_from_the_table_and_keeps_its_runs(site):
    page, home = site["page"], site["home"]
    runs_of_naive = [r["id"] for r in RunStore(home / "runs.db").runs(model="naive", limit=None)]
    row(page, "naive").locator(".m5-delete").click()
    confirm = row(page, "naive").locator(".m5-confirm-delete")
    confirm.wait_for()
    B.screenshot(page, "dashboard-8-delete-confirm")
    confirm.click()
    row(page, "naive").wait_for(state="detached")
    message(page, "deleted naive")
    assert "naive" not in Registry(home / "registry.json").models()
    assert [r["id"] for r in RunStore(home / "runs.db").runs(model="naive", limit=None)] == runs_of_naive
    page.locator(".m5-runs tr", has_text="naive (deleted)").first.wait_for()
    lines = metric_lines(page)
    page.click(".m5-show-deleted input")
    page.wait_for_function("(n) => document.querySelectorAll('.m5-metric-chart .curve path.line').length === n",
                           arg=lines + 1)
    B.screenshot(page, "dashboard-9-deleted")


def test_an_executed_notebook_opens_on_the_page(site):
    page = site["page"]
    needs_runner(site)
    options = page.locator(".m5-notebook-choice select option").all_text_contents()
    assert any("train-naive" in text for text in options)
    page.select_option(".m5-notebook-choice select", label=next(t for t in options if "train-naive" in t))
    page.click("button.m5-open-notebook")
    page.locator(".m5-notebook iframe.m5-notebook-frame").wait_for(timeout=60_000)
    frame = page.frame_locator(".m5-notebook iframe.m5-notebook-frame")
    frame.locator("body").wait_for()
    assert "train" in frame.locator("body").inner_text().lower()
    time.sleep(0.5)
    B.screenshot(page, "dashboard-10-notebook")
    # by now days arrived, models were trained, paused and deleted: no refresh of the page broke on the way
    assert "refresh failed" not in page.inner_text(".m5-messages")


def test_a_running_training_shows_its_progress_bar_until_it_ends(site):
    page, home = site["page"], site["home"]
    needs_runner(site)
    gate = site["logs"] / "gate"
    gate.write_text("closed")  # the gated kind's fit reports 50% and waits while this file exists
    B.m5ops(home, "create", "gated", "--kind", "test_gated", "--param", f"gate={gate}", env=site["env"])
    row(page, "gated").wait_for()
    assert page.locator(".m5-progress-row").count() == 0  # the runner is idle: no bar
    row(page, "gated").locator(".m5-train").click()
    bar = page.locator(".m5-progress-row", has_text="train-gated")
    bar.wait_for(timeout=RUN_WAIT_MS)
    page.wait_for_function(
        "() => { const n = document.querySelector('.m5-progress-row .m5-progress-note');"
        " return n && n.textContent.includes('waiting at the gate'); }", timeout=RUN_WAIT_MS, polling=200)
    start, end = FIT_PART  # the fit's 50% is halfway through the fit's part of the training
    assert bar.locator(".m5-progress-percent").text_content() == f"{start + (end - start) * 0.5:.0%}"
    B.screenshot(page, "dashboard-11-progress")
    gate.unlink()
    bar.wait_for(state="detached", timeout=RUN_WAIT_MS)
    wait_cell(page, "gated", "versions", "1 (v1)")
    run = RunStore(home / "runs.db").runs(model="gated", limit=1)[0]
    assert run["status"] == "succeeded" and run["progress"] == 1.0
    assert run["progress_note"].startswith("trained gated v1")


def test_a_failed_training_raises_an_alert_banner_that_names_it(site):
    page, home = site["page"], site["home"]
    needs_runner(site)
    assert not page.locator(".m5-alerts").is_visible()  # nothing wrong so far: no banner
    B.m5ops(home, "create", "broken", "--kind", "test_failing", "--paused", env=site["env"])
    B.m5ops(home, "train", "broken", "--queue", env=site["env"])
    alert = page.locator(".m5-alerts .m5-alert-failed-run", has_text="train-broken failed")
    alert.wait_for(timeout=RUN_WAIT_MS)
    assert "test_failing: this training was made to fail" in alert.text_content()
    B.screenshot(page, "dashboard-12-alert")
