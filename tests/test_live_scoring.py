"""Live metrics: each arrived day scores the stored forecasts that targeted it, by horizon, and the
WRMSSE of every issue whose window it completes; ``m5ops metrics`` shows them beside the backtest."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from m5ops.data.schema import HORIZON
from m5ops.data.feature_store import FeatureStore
from m5ops.data.store import DayStore
from m5ops.errors import LedgerError
from m5ops.evaluation.metrics import evaluate_forecast
from m5ops.evaluation.wrmsse import WRMSSE
from m5ops.pipeline.live_scoring import horizon_scores, score_arrival
from m5ops.pipeline.tasks import simulate_day
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import ForecastLedger, Issue
from m5ops.stores.metrics import MetricStore

TODAY = 1885  # the last stored day of the real_workspace fixture (60 series)


def fake_issue(model: str, issue_day: int, n: int, scale: float) -> Issue:
    """An issue whose forecasts grow with the series index and the horizon."""
    values = scale * (1 + np.arange(n)[:, None] % 5 + 0.1 * np.arange(1, HORIZON + 1)[None, :])
    return Issue(model, "v2", issue_day, values.astype(np.float32), ("holdback",) * HORIZON)


@pytest.fixture
def scored(real_workspace):
    """Issues of two models on each of the 28 days before TODAY, then TODAY scored as it arrives."""
    workspace = Workspace(real_workspace)
    ledger, store = ForecastLedger.of(workspace), DayStore(workspace.data_dir)
    n = store.n_series()
    for issue_day in range(TODAY - HORIZON, TODAY):
        ledger.write(fake_issue("alpha", issue_day, n, 1.0))
        ledger.write(fake_issue("beta", issue_day, n, 0.5))
    actual = store.read_matrix(TODAY, TODAY)[0][:, 0]
    return workspace, score_arrival(workspace, TODAY, actual, run_id="r-live")


def test_every_forecast_of_the_day_is_scored_by_model_version_and_horizon(scored):
    workspace, scores = scored
    store = DayStore(workspace.data_dir)
    actual = store.read_matrix(TODAY, TODAY)[0][:, 0]
    rows = MetricStore(workspace.runs_path).history(source="live")
    daily = rows[rows["horizon"] > 0]
    assert set(daily["sim_day"]) == {TODAY} and set(daily["version"]) == {"v2"} and set(daily["run_id"]) == {"r-live"}
    assert sorted(daily["horizon"].unique()) == list(range(1, HORIZON + 1))
    assert (daily["issue_day"] + daily["horizon"] == TODAY).all()
    assert len(daily) == 2 * HORIZON * 4, "2 models x 28 horizons x (mae, wmape, rmse, tweedie)"
    for model, scale in (("alpha", 1.0), ("beta", 0.5)):
        for h in (1, 17, 28):
            expected = evaluate_forecast(actual, fake_issue(model, TODAY - h, len(actual), scale).values[:, h - 1])
            got = daily[(daily["model"] == model) & (daily["horizon"] == h)].set_index("metric")["value"]
            assert got.to_dict() == pytest.approx(expected, rel=1e-12), (model, h)
            window = daily[(daily["model"] == model) & (daily["horizon"] == h)][["window_start", "window_end"]]
            assert (window == TODAY).all().all(), "a horizon row scores the one day"


def test_an_issue_whose_window_completes_gets_its_wrmsse_at_every_level(scored):
    workspace, _ = scored
    store = DayStore(workspace.data_dir)
    issue_day = TODAY - HORIZON
    rows = MetricStore(workspace.runs_path).history(source="live", level=None)
    window = rows[(rows["horizon"] == 0) & (rows["model"] == "alpha")]
    assert set(window["issue_day"]) == {issue_day} and set(window["metric"]) == {"wrmsse"}
    assert sorted(window["level"], key=lambda lv: (lv != "all", lv.zfill(3))) == ["all", *[str(k) for k in range(1, 13)]]
    assert (window["window_start"] == issue_day + 1).all() and (window["window_end"] == TODAY).all()
    sales, prices = store.read_matrix(store.first_day(), issue_day)  # independent: the whole history before the window
    evaluator = WRMSSE(store.series(), sales, prices)
    actual, _ = store.read_matrix(issue_day + 1, TODAY)
    forecast = fake_issue("alpha", issue_day, len(actual), 1.0).values
    by_level = window.set_index("level")["value"]
    assert by_level["all"] == pytest.approx(evaluator.score(actual, forecast).overall, rel=1e-9)
    assert by_level["12"] == pytest.approx(evaluator.score_by_level(actual, forecast)["Level12"], rel=1e-12)


def test_scoring_a_day_again_replaces_its_rows(scored):
    workspace, scores = scored
    metrics = MetricStore(workspace.runs_path)
    before = metrics.history(source="live", level=None)
    actual = DayStore(workspace.data_dir).read_matrix(TODAY, TODAY)[0][:, 0]
    assert len(score_arrival(workspace, TODAY, actual)) == len(scores)
    after = metrics.history(source="live", level=None)
    assert len(after) == len(before) and np.allclose(after["value"], before["value"], equal_nan=True)


def test_a_day_no_forecast_targeted_scores_nothing(real_workspace):
    assert horizon_scores(ForecastLedger.of(Workspace(real_workspace)).targeting(TODAY), np.zeros(60), TODAY) == []


def test_metrics_command_shows_live_rows_beside_backtest_ones(scored):
    workspace, _ = scored
    MetricStore(workspace.runs_path).record(TODAY, "2016-03-27", "alpha", "v2", {"mae": 1.0}, (TODAY - 27, TODAY))

    def metrics(*args):
        result = subprocess.run([sys.executable, "-m", "m5ops.cli", "--home", str(workspace.home), "metrics", *args],
                                capture_output=True, text=True, timeout=120, check=True)
        return result.stdout

    records = json.loads(metrics("--json"))
    assert {r["source"] for r in records} == {"backtest", "live"}
    assert all("horizon" not in r and "issue_day" not in r for r in records if r["source"] == "backtest")
    assert all(r["issue_day"] + r["horizon"] == TODAY for r in records if r["source"] == "live" and r["horizon"])
    assert {r["source"] for r in json.loads(metrics("--json", "--source", "backtest"))} == {"backtest"}
    live = json.loads(metrics("--json", "--source", "live"))
    assert {r["source"] for r in live} == {"live"} and len(live) == 2 * HORIZON * 4 + 2
    text = metrics()
    assert text.startswith("backtest:") and "\nlive:" in text and "issue_day" in text


def test_an_arrival_whose_forecasts_cannot_be_scored_is_taken_back_whole(real_workspace):
    workspace = Workspace(real_workspace)
    ledger = ForecastLedger.of(workspace)
    ledger.write(fake_issue("alpha", TODAY, 60, 1.0))
    ledger.issue_path("alpha", TODAY).write_bytes(b"broken")  # a file the ledger did not write
    with pytest.raises(LedgerError, match="delete it"):
        simulate_day(str(real_workspace), "manual")
    assert DayStore(workspace.data_dir).last_day() == TODAY
    assert FeatureStore(workspace.features_dir).stored_days()[-1] == TODAY
    assert MetricStore(workspace.runs_path).history(source="live").empty
    ledger.issue_path("alpha", TODAY).unlink()
    assert simulate_day(str(real_workspace), "manual").day == TODAY + 1
