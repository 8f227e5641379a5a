"""The dashboard's drift panel in a real browser, against a real Voila server.

One model gets its drift from a real training and evaluation; another gets hand-made drift rows
in each band, so that the order (target first, then by PSI) and the bands can be checked. A drift
row recorded while the page is open shows without a reload.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

from m5ops.data.store import DayStore  # noqa: E402
from m5ops.evaluation.drift import column_drift  # noqa: E402
from m5ops.pipeline.tasks import evaluate, train  # noqa: E402
from m5ops.stores.drift import DriftStore  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT_MS = 30_000


def _row(column: str, psi: float, target: bool = False) -> dict:
    """A hand-made numeric drift row with the given PSI."""
    return {**column_drift(column, [0.0, 1.0], [0.0, 1.0], is_target=target).as_dict(), "psi": psi}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A workspace with drift for two models, its dashboard, and a chromium page on it."""
    if (reason := B.browser_missing()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("drift-browser")
    home = B.make_workspace(tmp / "ws", {"naive": "seasonal_naive", "avg": "moving_average"}, items=1, days=176)
    workspace = Workspace(home)
    train(str(home), "run-train", "naive")
    evaluate(str(home), "run-eval", ["naive"])  # real drift of the naive model
    today = DayStore(workspace.data_dir).last_day()
    Registry(workspace.registry_path).add_version("avg", {"sim_date": "2011-01-01", "sim_day": today - 3,
                                                          "cutoff_day": today - 31, "artifact": "models/avg/v1"})
    store = DriftStore(workspace.runs_path)
    for day, psi in ((today - 2, 0.05), (today - 1, 0.18)):
        store.record(day, "avg", "v1", [_row("sales", psi, target=True)], (1, today - 31), (day - 27, day), "r-old")
    store.record(today, "avg", "v1", [_row("sales", 0.31, True), _row("lag_28", 0.05), _row("sell_price", 0.15),
                                      _row("rmean_7", 0.4)], (1, today - 31), (today - 27, today), "r-now")
    with B.voila(home, tmp / "voila.log") as url, B.chromium() as browser:
        page = B.open_page(browser)
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_selector(".m5-drift-row")
        yield {"home": home, "page": page, "today": today, "store": store}
        page.close(run_before_unload=True)


def rows(page) -> list[tuple[str, str]]:
    """(column, band) of each row of the drift table, in order."""
    found = page.evaluate("() => [...document.querySelectorAll('.m5-drift-row')].map(r =>"
                          " [r.dataset.column, [...r.classList].find(c => c.startsWith('m5-band-')).slice(8)])")
    return [tuple(pair) for pair in found]


def test_the_table_shows_the_target_first_then_features_by_psi_in_their_bands(site):
    page = site["page"]
    assert page.locator(".m5-drift-model select option").all_text_contents() == ["avg", "naive"]
    assert rows(page) == [("sales", "significant"), ("rmean_7", "significant"), ("sell_price", "moderate"),
                          ("lag_28", "stable")]
    assert page.locator(".m5-drift-row").first.locator(".m5-drift-psi").text_content() == "0.310"
    assert "avg v1" in page.locator(".m5-drift-caption").text_content()
    B.screenshot(page, "drift-1-table")


def test_the_chart_draws_each_models_target_psi_over_time(site):
    page = site["page"]
    legend = {t.strip() for t in page.locator(".m5-drift-chart .g_legend text").all_text_contents()}
    assert {"avg", "naive"} <= legend
    # two model lines and the two band limits
    page.wait_for_function("() => document.querySelectorAll('.m5-drift-chart .curve path.line').length === 4")
    B.assert_day_ticks(page, ".m5-drift-chart")


def test_choosing_a_model_shows_its_real_drift(site):
    page = site["page"]
    page.select_option(".m5-drift-model select", label="naive")
    page.wait_for_function("() => document.querySelector('.m5-drift-caption').textContent.includes('naive v1')")
    found = rows(page)
    assert [column for column, _ in found] == ["sales"] and found[0][1] in ("stable", "moderate", "significant")
    psi = float(page.locator(".m5-drift-psi").first.text_content())
    recorded = site["store"].latest("naive")["psi"].iloc[0]
    assert psi == pytest.approx(recorded, abs=5e-4)


def test_drift_recorded_while_the_page_is_open_shows_without_a_reload(site):
    page, today = site["page"], site["today"]
    days_drawn = len(B.x_ticks(page, ".m5-drift-chart"))
    site["store"].record(today + 1, "naive", "v1", [_row("sales", 0.42, target=True)], (1, today - 28),
                         (today - 26, today + 1), "r-later")
    page.wait_for_function("() => { const r = document.querySelector('.m5-drift-row');"
                           " return r && r.classList.contains('m5-band-significant'); }", timeout=WAIT_MS)
    # the chart's update is a message of its own: it gains the new day's tick
    page.wait_for_function("(n) => document.querySelectorAll('.m5-drift-chart .axis')[0]"
                           ".querySelectorAll('.tick text').length > n", arg=days_drawn, timeout=WAIT_MS)
    assert page.locator(".m5-drift-psi").first.text_content() == "0.420"
    B.screenshot(page, "drift-2-live")
