"""No inf and no NaN in the dashboard after 30 simulated days, read in a real browser.

The workspace is the synthetic generator's data (1 item per department, the embedded default's
generator at a small size) with one series made to launch late and never change, so that its
WRMSSE cannot be scaled: before series without a scale were left out, that made the score inf.
30 days arrive and are evaluated by the task functions (the notebooks around them are tested
elsewhere); then a real Voila serves the dashboard and Debian's chromium reads the models table
and the monitoring chart, at the overall WRMSSE and at level 12.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402
from test_wrmsse_monitoring import BASELINES, flat_launch_workspace, tick_in_process  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TICKS = 30
WAIT_MS = 60_000
NOT_A_NUMBER = re.compile(r"\b(inf|nan)\b|infinity", re.IGNORECASE)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The dashboard of the workspace after 30 evaluated days, open in chromium."""
    if (reason := B.browser_missing()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("wrmsse-browser")
    workspace, _ = flat_launch_workspace(tmp)
    tick_in_process(workspace, TICKS)
    with B.voila(workspace.home, tmp / "voila.log") as url, B.chromium() as browser:
        page = B.open_page(browser)
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_selector(".m5-model-row")
        yield page
        page.close(run_before_unload=True)


def visible_text(page, selector: str) -> str:
    """Every text of an element, SVG text included (which ``inner_text`` leaves out)."""
    return page.locator(selector).first.text_content()


def wait_for_axis(page, label: str) -> None:
    page.wait_for_function("(label) => [...document.querySelectorAll('.m5-metric-chart text')]"
                           ".some(t => t.textContent.trim() === label)", arg=label)


def wait_for_lines(page, count: int) -> None:
    page.wait_for_function("(n) => document.querySelectorAll('.m5-metric-chart .curve path.line').length === n",
                           arg=count)


def test_models_table_has_finite_scores_and_the_left_out_note(page):
    for name in BASELINES:
        cells = page.locator(f".m5-model-{name}")
        assert re.fullmatch(r"\d+\.\d+", cells.locator(".m5-col-wrmsse").text_content())
        assert cells.locator(".m5-col-note").text_content().endswith("series without a scale left out")
    text = visible_text(page, ".m5-models")
    assert not NOT_A_NUMBER.search(text), text


@pytest.mark.parametrize("level, axis, shot", [
    ("overall", "WRMSSE", "overall"),
    ("level 12 (item x store)", "WRMSSE, level 12 (item x store)", "level-12"),
])
def test_monitoring_chart_shows_wrmsse_at_a_level_without_inf_or_nan(page, level, axis, shot):
    page.select_option(".m5-metric-choice select", label="WRMSSE")
    page.select_option(".m5-level-choice select", label=level)
    wait_for_axis(page, axis)
    wait_for_lines(page, len(BASELINES))
    page.locator(".m5-chart-note", has_text="series without a scale left out").wait_for()
    text = visible_text(page, ".m5-monitoring")
    assert not NOT_A_NUMBER.search(text), text
    ticks = page.locator(".m5-metric-chart .axis text").all_text_contents()
    assert ticks and not any(NOT_A_NUMBER.search(t) for t in ticks)
    B.screenshot(page, f"wrmsse-after-{TICKS}-days-{shot}")
