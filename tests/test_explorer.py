"""The forecast explorer's data and panel without a browser: nodes and their search, node sums by the
summing matrix against a plain group-by, issues picked by day, date ticks and empty-chart texts.

The panel runs here with no event loop, so its loads happen in place; the browser tests
(``test_explorer_browser.py``) drive the same panel through Voila.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

from m5ops.dashboard.charts import TOP_NOTE_Y, date_ticks  # noqa: E402
from m5ops.dashboard.explorer_panel import ExplorerPanel  # noqa: E402
from m5ops.dashboard.explorer_state import LATEST, ExplorerReader, issue_day_for, node_lines  # noqa: E402
from m5ops.dashboard.state import WorkspaceReader  # noqa: E402
from m5ops.data.split import Split  # noqa: E402
from m5ops.pipeline.issue import issue_forecasts  # noqa: E402
from m5ops.pipeline import modeling  # noqa: E402
from m5ops.pipeline.modeling import WorkspaceData, forecast_matrix, load_current, train_version  # noqa: E402
from m5ops.pipeline.tasks import simulate_day  # noqa: E402
from m5ops.stores.ledger import ForecastLedger  # noqa: E402


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """naive and avg, trained, issued on two days (70 series)."""
    home = B.make_workspace(tmp_path_factory.mktemp("explorer") / "ws",
                            {"naive": "seasonal_naive", "avg": "moving_average"}, items=1, days=176)
    data = WorkspaceData.open(home)
    for name in ("naive", "avg"):
        train_version(data, name)
    issue_forecasts(data)
    simulate_day(str(home), "test-arrival")
    issue_forecasts(WorkspaceData.open(home))
    return home


@pytest.fixture
def panel(home):
    reader = WorkspaceReader(home)
    panel = ExplorerPanel(reader.workspace, reader.store)
    panel.update(reader.store.last_day(), reader.registry_data()["models"])
    return panel


def lines_of(panel) -> dict[str, np.ndarray]:
    return {line.label: line.values for line in
            node_lines(panel.reader, panel.node, panel.chosen_versions(), panel.test_range, panel.issue.value)}


@pytest.mark.parametrize("level,column", [("Level2", "state_id"), ("Level3", "store_id"), ("Level5", "dept_id"),
                                          ("Level10", "item_id")])
def test_a_node_is_the_group_sum_of_its_series(panel, level, column):
    store = panel.store
    today = store.last_day()
    sales, _ = store.read_matrix(today - 111, today)
    series = store.series()
    name = panel.reader.index.search(level, "", 1000)[0][-1]
    panel.level.value = level
    panel.nodes.value = name
    assert panel.node.name == name and name in panel.figure.title
    expected = sales[(series[column] == name).to_numpy()].sum(axis=0)
    np.testing.assert_allclose(panel.marks["actual"].y, expected)
    issued = ForecastLedger.of(panel.workspace).read_issue("avg", today)
    got = lines_of(panel)[f"avg v1 issued {day_str(today)}"]
    np.testing.assert_allclose(got, issued.values[(series[column] == name).to_numpy()].sum(axis=0), rtol=1e-5)


def day_str(day: int) -> str:
    from m5ops.data.schema import day_date
    return str(day_date(day).date())


def test_a_store_x_department_node_and_one_series(panel):
    store, series = panel.store, panel.store.series()
    today = store.last_day()
    sales, _ = store.read_matrix(today - 111, today)
    panel.level.value = "Level9"
    panel.search.value = "tx_2 household_1"
    assert list(panel.nodes.options) == ["TX_2 x HOUSEHOLD_1"]
    panel.nodes.value = "TX_2 x HOUSEHOLD_1"
    mask = ((series["store_id"] == "TX_2") & (series["dept_id"] == "HOUSEHOLD_1")).to_numpy()
    np.testing.assert_allclose(panel.marks["actual"].y, sales[mask].sum(axis=0))
    panel.level.value = "Level12"
    panel.search.value = "FOODS_2_001 x WI_3"
    panel.nodes.value = "FOODS_2_001 x WI_3"
    row = np.flatnonzero(((series["item_id"] == "FOODS_2_001") & (series["store_id"] == "WI_3")).to_numpy())
    np.testing.assert_allclose(panel.marks["actual"].y, sales[row[0]])
    assert panel.figure.title.startswith("series (item x store) FOODS_2_001 x WI_3")


def test_the_backtest_is_the_current_versions_forecast_of_the_test_window(panel):
    data = WorkspaceData.open(panel.workspace.home)
    model, version = load_current(data, "naive")
    expected = forecast_matrix(model, modeling.test_input(data), len(data.series)).sum(axis=0)
    np.testing.assert_allclose(lines_of(panel)["naive v1 backtest"], expected, rtol=1e-5)
    start, end = Split(data.store.first_day(), data.store.last_day(), data.workspace.config().test_days).test_range()
    assert panel.reader.backtest("naive", "v1", start).values.shape == (len(data.series), end - start + 1)


def test_the_search_matches_every_word_in_any_case(home):
    reader = WorkspaceReader(home)
    explorer = ExplorerReader(reader.workspace, reader.store)
    index = explorer.load_index()
    names, total = index.search("Level12", "hobbies ca_1")
    assert total == len(names) == 2 and all("HOBBIES" in n and "CA_1" in n for n in names)
    names, total = index.search("Level12", "", limit=5)
    assert len(names) == 5 and total == 70
    assert index.search("Level3", "nothing-like-this") == ([], 0)


def test_an_issue_picked_by_day_and_the_next_28_days(panel):
    today = panel.store.last_day()
    assert [v for _, v in panel.issue.options] == [LATEST, today, today - 1]
    labels = set(lines_of(panel))
    assert f"naive v1 issued {day_str(today)}" in labels and not any("next 28 days" in x for x in labels)
    panel.issue.value = today - 1
    labels = set(lines_of(panel))
    assert {f"naive v1 issued {day_str(today - 1)}", "naive v1 next 28 days"} <= labels
    assert panel.marks["next"].labels == ["naive v1 next 28 days", "avg v1 next 28 days"]
    panel.models.value = ["avg"]
    assert not any(label.startswith("naive") for label in lines_of(panel))
    assert issue_day_for(today - 5, [today - 1, today]) is None and issue_day_for(LATEST, []) is None


def test_empty_texts_say_why_and_when(home, tmp_path):
    empty = B.make_workspace(tmp_path / "ws", {"naive": "seasonal_naive"}, items=1, days=176)
    reader = WorkspaceReader(empty)
    panel = ExplorerPanel(reader.workspace, reader.store)
    panel.update(reader.store.last_day(), reader.registry_data()["models"])
    assert panel.empty.text.startswith("no model has a version yet")
    assert list(panel.marks["actual"].y) and not len(panel.marks["backtest"].y)
    train_version(WorkspaceData.open(empty), "naive")
    panel.update(reader.store.last_day(), reader.registry_data()["models"])
    assert panel.empty.text == "no issued forecast yet: the first issue comes with the next tick"
    assert list(panel.empty.label.y) == [TOP_NOTE_Y]  # along the top: the actuals and backtests are drawn
    assert panel.marks["backtest"].labels == ["naive v1 backtest"]


@pytest.mark.parametrize("days,step", [(0, 1), (3, 1), (8, 1), (13, 2), (111, 14), (139, 28), (700, 91)])
def test_date_ticks_fall_on_whole_days(days, step):
    first = pd.Timestamp("2011-01-29")
    ticks = date_ticks(first, first + pd.Timedelta(days=days))
    assert ticks[0] == np.datetime64(first) and len(ticks) <= 9
    assert (np.diff(ticks) == np.timedelta64(step, "D")).all()
    assert (pd.DatetimeIndex(ticks) == pd.DatetimeIndex(ticks).normalize()).all()
    assert date_ticks(None, first) is None
