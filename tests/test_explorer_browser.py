"""The forecast explorer in a real browser, against a real Voila server: levels and nodes with the search,
the actuals, backtests and issued forecasts of a node (sums of the series'), an older issue picked by
day, tooltips, date axes that show days, and charts that say why they are empty.

One workspace with two models, each trained and issued on two days, one Voila server and one page
for the module; a second, untrained workspace for the empty charts. Screenshots go to
``test-artifacts/``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

from m5ops.data.store import DayStore  # noqa: E402
from m5ops.pipeline.issue import issue_forecasts  # noqa: E402
from m5ops.pipeline.modeling import WorkspaceData, train_version  # noqa: E402
from m5ops.pipeline.tasks import evaluate, simulate_day  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.ledger import ForecastLedger  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT_MS = 30_000
FIRST_MS = 120_000  # the first render on a machine shared with other work
TITLE = ".m5-explorer-chart .mainheading"


def _require_browser():
    if (reason := B.browser_missing()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def chrome():
    """One browser for the module (Playwright's sync API allows one at a time)."""
    _require_browser()
    with B.chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def site(tmp_path_factory, chrome):
    """naive and avg, trained, issued on two days; the dashboard and a page on it."""
    tmp = tmp_path_factory.mktemp("explorer-browser")
    home = B.make_workspace(tmp / "ws", {"naive": "seasonal_naive", "avg": "moving_average"}, items=1, days=176)
    data = WorkspaceData.open(home)
    for name in ("naive", "avg"):
        train_version(data, name)
    issue_forecasts(data)
    simulate_day(str(home), "seed-arrival")
    issue_forecasts(WorkspaceData.open(home))
    evaluate(str(home), "seed-evaluation")  # one evaluated day: the span where d3 ticked "06 AM"
    with B.voila(home, tmp / "voila.log") as url:
        page = B.open_page(chrome, viewport=(1500, 1200))
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_function(f"() => {{ const t = document.querySelector('{TITLE}');"
                               " return t && t.textContent.startsWith('total'); }", polling=100, timeout=FIRST_MS)
        yield {"home": home, "page": page, "workspace": Workspace(home)}
        page.close(run_before_unload=True)


def legend(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.m5-explorer-legend .m5-legend-item')]"
                         ".map(t => t.textContent)")


def choose_node(page, level_label: str, search: str, node: str) -> float:
    """Pick a level, search, pick a node; returns the browser's ms from the pick to the redrawn chart."""
    page.select_option(".m5-explorer-level select", label=level_label)
    page.wait_for_function(f"(l) => document.querySelector('{TITLE}').textContent.startsWith(l)", arg=level_label,
                           polling=50)
    box = page.locator(".m5-explorer-search input")
    box.fill(search)
    # every option matches the search (so the list shown is the search's, not the level's before it)
    page.wait_for_function("([n, s]) => { const o = [...document.querySelectorAll('.m5-explorer-node option')];"
                           " return o.some(x => x.textContent.replace(/\\u00a0/g, ' ') === n)"
                           " && o.every(x => x.textContent.replace(/\\u00a0/g, ' ').toLowerCase().includes(s.toLowerCase())); }",
                           arg=[node, search], polling=50)
    return redraw_ms(page, node)


def redraw_ms(page, node: str) -> float:
    """Select ``node`` in the list and time, in the page, until the title names it and the actual line changed."""
    return page.evaluate("""(node) => new Promise((resolve, reject) => {
        const select = document.querySelector('.m5-explorer-node select');
        const title = () => document.querySelector('%s').textContent;
        const path = () => { const p = document.querySelector('.m5-explorer-chart path.line');
                             return p ? p.getAttribute('d') : ''; };
        const before = path();
        const start = performance.now();
        select.value = node;
        select.dispatchEvent(new Event('change', {bubbles: true}));
        const check = () => {
            if (title().includes(node) && path() !== before) { resolve(performance.now() - start); return; }
            if (performance.now() - start > 20000) { reject(new Error('no redraw: ' + title())); return; }
            requestAnimationFrame(check);
        };
        check();
    })""" % TITLE, node)


def tooltip_of_last_actual(page) -> str:
    """Hover the last point of the actual line (the first points of the tooltip scatter) and read the tooltip."""
    index = page.evaluate("() => { const dots = [...document.querySelectorAll('.m5-explorer-chart .dot')];"
                          " const actual = dots.filter(d => d.__data__ && d.__data__.name === 'actual');"
                          " return dots.indexOf(actual[actual.length - 1]); }")
    assert index >= 0, "no tooltip point on the actual line"
    page.locator(".m5-explorer-chart .dot").nth(index).hover(force=True)
    find = ("() => [...document.querySelectorAll('.bqplot_tooltip_div')].map(t => t.textContent)"
            ".find(t => t.includes('actual') && t.includes('date')) || ''")
    page.wait_for_function(find, polling=100)
    return page.evaluate(find)


def test_total_shows_actuals_backtests_and_the_latest_issue(site):
    page = site["page"]
    page.wait_for_function("() => document.querySelectorAll('.m5-explorer-legend .m5-legend-item').length >= 5", polling=100)
    labels = legend(page)
    today = DayStore(site["workspace"].data_dir).last_day()
    assert labels[0] == "actual"
    assert {"naive v1 backtest", "avg v1 backtest"} <= set(labels)
    issued = [label for label in labels if " issued " in label]
    assert sorted(issued) == ["avg v1 issued 2011-05-29", "naive v1 issued 2011-05-29"], labels
    assert not any("next 28 days" in label for label in labels)  # the latest issue is the picked one
    assert ForecastLedger.of(site["workspace"]).issue_days("naive")[-1] == today
    B.screenshot(page, "explorer-total")


def test_date_axes_show_days_not_hours(site):
    page = site["page"]
    for chart in (".m5-explorer-chart", ".m5-metric-chart", ".m5-forecast-chart", ".m5-totals-chart"):
        B.assert_day_ticks(page, chart)


def test_a_store_node_is_the_sum_of_its_series_and_redraws_within_a_second(site):
    page = site["page"]
    elapsed = choose_node(page, "store", "CA_2", "CA_2")
    assert elapsed < 1000, f"redraw took {elapsed:.0f} ms"
    store = DayStore(site["workspace"].data_dir)
    today, series = store.last_day(), store.series()
    sales, _ = store.read_matrix(today, today)
    expected = float(sales[(series["store_id"] == "CA_2").to_numpy(), 0].sum())
    text = tooltip_of_last_actual(page)
    assert f"{expected:.4g}" in text, (expected, text)
    B.screenshot(page, "explorer-store")


def test_the_search_narrows_the_series_and_one_series_is_drawn(site):
    page = site["page"]
    page.select_option(".m5-explorer-level select", label="series (item x store)")
    page.locator(".m5-explorer-search input").fill("hobbies_1 tx_3")
    # The node list and the count are two widgets, updated by two messages: wait for both.
    page.wait_for_function("() => document.querySelectorAll('.m5-explorer-node option').length === 1"
                           " && document.querySelector('.m5-explorer-count').textContent.includes('1 of 70')",
                           polling=50)
    assert page.locator(".m5-explorer-node option").count() == 1
    elapsed = redraw_ms(page, "HOBBIES_1_001 x TX_3")
    assert elapsed < 1000
    assert page.locator(TITLE).text_content().startswith("series (item x store) HOBBIES_1_001 x TX_3")


def test_an_older_issue_picked_by_day_shows_beside_the_next_28_days(site):
    page = site["page"]
    page.select_option(".m5-explorer-level select", label="total")
    page.wait_for_function(f"() => document.querySelector('{TITLE}').textContent.startsWith('total')", polling=50)
    page.select_option(".m5-explorer-issue select", label="d_120 (2011-05-28)")
    page.wait_for_function("() => [...document.querySelectorAll('.m5-explorer-legend .m5-legend-item')]"
                           ".some(t => t.textContent.includes('issued 2011-05-28'))", polling=100)
    labels = legend(page)
    assert {"naive v1 issued 2011-05-28", "avg v1 issued 2011-05-28",
            "naive v1 next 28 days", "avg v1 next 28 days"} <= set(labels), labels
    B.screenshot(page, "explorer-older-issue")


def test_only_the_chosen_models_are_drawn(site):
    page = site["page"]
    page.select_option(".m5-explorer-models select", ["avg"])
    page.wait_for_function("() => ![...document.querySelectorAll('.m5-explorer-legend .m5-legend-item')]"
                           ".some(t => t.textContent.startsWith('naive'))", polling=100)
    assert any(label.startswith("avg") for label in legend(page))


@pytest.fixture(scope="module")
def empty_site(tmp_path_factory, chrome):
    """A workspace whose models were never trained: nothing to score, nothing issued."""
    tmp = tmp_path_factory.mktemp("explorer-empty")
    home = B.make_workspace(tmp / "ws", {"naive": "seasonal_naive"}, items=1, days=176)
    with B.voila(home, tmp / "voila.log") as url:
        page = B.open_page(chrome, viewport=(1500, 1200))
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_function(f"() => {{ const t = document.querySelector('{TITLE}');"
                               " return t && t.textContent.startsWith('total'); }", polling=100, timeout=FIRST_MS)
        yield page
        page.close(run_before_unload=True)


def test_empty_charts_say_why_and_when_they_fill(empty_site):
    page = empty_site

    def label(chart: str) -> str:
        return page.evaluate("(c) => [...document.querySelectorAll(c + ' text.label')].map(t => t.textContent)"
                             ".join(' | ')", chart)
    page.wait_for_function("() => [...document.querySelectorAll('.m5-explorer-chart text.label')]"
                           ".some(t => t.textContent.includes('no model has a version yet'))", polling=100)
    assert "no model has a version yet" in label(".m5-explorer-chart")
    assert "the first comes with" in label(".m5-metric-chart") or "each tick's evaluation" in label(".m5-metric-chart")
    assert "no issued forecast yet: the first issue comes with the next tick" in label(".m5-forecast-chart")
    assert "no drift recorded yet: each tick's evaluation records it" in label(".m5-drift-chart")
    B.screenshot(page, "explorer-empty")
