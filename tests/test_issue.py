"""Issuing forecasts of the next 28 days: their features and prices, the task notebook in a tick,
the forecast command, and the consistency of issue, backtest and live scores on the real slice."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from m5ops.data.features import FEATURE_COLUMNS
from m5ops.data.schema import HORIZON
from m5ops.models import ForecastModel
from m5ops.orchestration.jobs import run_task
from m5ops.orchestration.runner import backfill
from m5ops.pipeline import tasks
from m5ops.pipeline.arrival import arrive_next_day
from m5ops.pipeline.issue import future_window
from m5ops.pipeline.lifecycle import create_model, set_active
from m5ops.pipeline import modeling
from m5ops.pipeline.modeling import WorkspaceData, forecast_matrix, train_version
from m5ops.pipeline.serving import serving_model_name
from m5ops.stores.holdback import Holdback
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import ForecastLedger, Issue
from m5ops.stores.metrics import MetricStore
from m5ops.stores.runs import RunStore

TODAY = 1885  # the real_workspace fixture: stored to d_1885, d_1886..d_1941 held back
BASELINES = ("seasonal-naive", "moving-average")


def m5ops(home, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "m5ops.cli", "--home", str(home), *args],
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"m5ops {args} failed ({result.returncode}): {result.stderr}")
    return result


def train_baselines(home) -> WorkspaceData:
    """Versions of the two baselines (they learn nothing: fast); the learned kinds stay untrained and paused."""
    workspace = Workspace(home)
    for name in ("lightgbm", "hist-gb"):
        set_active(workspace, name, False)
    data = WorkspaceData.open(home)
    for name in BASELINES:
        train_version(data, name)
    return data


def test_future_features_equal_the_stored_features_once_the_days_arrive(real_workspace):
    window = future_window(WorkspaceData.open(real_workspace))
    for _ in range(HORIZON):
        arrive_next_day(Workspace(real_workspace))
    data = WorkspaceData.open(real_workspace)
    stored = data.features.read(TODAY + 1, TODAY + HORIZON, data.series)
    future = window.inputs.features
    assert len(future) == len(stored) == 60 * HORIZON and future["sales"].isna().all()
    key = ["day", "series"]
    stored, future = stored.sort_values(key).reset_index(drop=True), future.sort_values(key).reset_index(drop=True)
    for column in key + FEATURE_COLUMNS:
        np.testing.assert_array_equal(future[column].to_numpy(), stored[column].to_numpy(), err_msg=column)
        assert future[column].dtype == stored[column].dtype, column
    assert window.price_source == ("holdback",) * HORIZON


def test_prices_past_the_hold_back_carry_the_last_known_price_forward(real_workspace):
    for _ in range(40):  # today d_1925: the hold-back reaches d_1941, 16 of the next 28 days
        arrive_next_day(Workspace(real_workspace))
    window = future_window(WorkspaceData.open(real_workspace))
    assert window.price_source == ("holdback",) * 16 + ("carried_forward",) * 12
    last_real = Holdback(Workspace(real_workspace).holdback_path).day(1941)[1]
    frame = window.inputs.features
    for day in (1942, 1953):
        prices = frame.loc[frame["day"] == day].sort_values("series")["sell_price"].to_numpy()
        np.testing.assert_array_equal(prices, last_real)


def test_the_issue_task_stores_each_model_with_a_version_once(real_workspace):
    data = train_baselines(real_workspace)
    workspace = data.workspace
    run = run_task(workspace, "issue_forecast", {})
    assert run["status"] == "succeeded", run["error"]
    ledger = ForecastLedger.of(workspace)
    assert ledger.models_issued(TODAY) == sorted(BASELINES), "models without a version issue nothing"
    issue = ledger.read_issue("seasonal-naive", TODAY)
    assert issue.values.shape == (60, HORIZON) and issue.run_id == run["id"] and issue.version == "v1"
    recent, _ = data.store.read_matrix(TODAY - 6, TODAY)
    np.testing.assert_array_equal(issue.values, np.tile(recent, 4), "sNaive repeats the last week")
    files = {m: ledger.issue_path(m, TODAY).read_bytes() for m in BASELINES}
    again = run_task(workspace, "issue_forecast", {})
    assert again["status"] == "succeeded"
    assert {m: ledger.issue_path(m, TODAY).read_bytes() for m in BASELINES} == files, "never issued twice"
    text = open(again["output"]).read()
    assert "seasonal-naive" in text and "image/png" in text, "the notebook shows the table and the plot"


def test_a_tick_issues_after_the_evaluation_and_before_any_training(real_workspace):
    train_baselines(real_workspace)
    workspace = Workspace(real_workspace)
    create_model(workspace, "late", "seasonal_naive")  # due for its first training in this tick
    runs = backfill(workspace, 1)
    assert [(r["task"], r["status"]) for r in runs] == [
        ("simulate_day", "succeeded"), ("evaluate", "succeeded"), ("issue_forecast", "succeeded"),
        ("train", "succeeded")]
    ledger = ForecastLedger.of(workspace)
    assert ledger.models_issued(TODAY + 1) == sorted(BASELINES), "the model trained after the issue waits a day"
    assert RunStore(workspace.runs_path).get(runs[2]["id"])["sim_day"] == TODAY + 1


def test_forecast_command_writes_issued_forecasts_in_m5_layout(real_workspace, tmp_path):
    out = tmp_path / "f.csv"
    refused = m5ops(real_workspace, "forecast", "--out", str(out), check=False)
    assert refused.returncode == 2 and "no model serves yet" in refused.stderr and not out.exists()
    data = train_baselines(real_workspace)  # each version is scored on the test window as it is trained
    refused = m5ops(real_workspace, "forecast", "--out", str(out), check=False)
    assert refused.returncode == 2 and "has issued no forecast yet" in refused.stderr and not out.exists()
    tasks.issue_forecast(str(real_workspace), "manual")
    tasks.evaluate(str(real_workspace), "manual")
    said = m5ops(real_workspace, "forecast", "--out", str(out)).stdout
    serving = MetricStore(data.workspace.runs_path).history().query("metric == 'wrmsse'").sort_values("value")
    best = serving["model"].iloc[0]
    assert f"the {best} v1 forecast issued on d_1885 (d_1886..d_1913)" in said
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["id", *[f"F{h}" for h in range(1, HORIZON + 1)]] and len(frame) == 60
    assert (frame["id"] == data.series["id"].astype(str)).all()
    values = ForecastLedger.of(data.workspace).read_issue(best, TODAY).values
    np.testing.assert_allclose(frame.iloc[:, 1:].to_numpy(), values, atol=5e-5)

    m5ops(real_workspace, "forecast", "--model", "moving-average", "--issued", "d_1885", "--out", str(out))
    backtest = m5ops(real_workspace, "forecast", "--model", "moving-average", "--backtest", "--out", str(out)).stdout
    assert "backtest of d_1858..d_1885" in backtest


@pytest.mark.parametrize("args, words", [
    (["--model", "seasonal-naive", "--issued", "1800"], "no forecast of 'seasonal-naive' was issued on d_1800"),
    (["--model", "seasonal-naive", "--issued", "yesterday"], "not a day"),
    (["--model", "seasonal-naive", "--backtest", "--issued", "1885"], "takes no --issued"),
    (["--model", "lightgbm"], "'lightgbm' has issued no forecast yet"),
    (["--model", "nosuch"], "no model named 'nosuch'"),
])
def test_forecast_command_refusals_exit_2_with_one_line(real_workspace, tmp_path, args, words):
    train_baselines(real_workspace)
    tasks.issue_forecast(str(real_workspace), "manual")
    out = tmp_path / "f.csv"
    result = m5ops(real_workspace, "forecast", *args, "--out", str(out), check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and words in lines[0], result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_issue_equals_the_backtest_of_its_window_and_its_live_wrmsse_the_backtest_wrmsse(real_workspace):
    """Replaying real days: the version's issue of day i is, value for value, its backtest of i+1..i+28."""
    workspace = Workspace(real_workspace)
    create_model(workspace, "quick", "lightgbm", {"num_boost_round": 30, "train_days": 180})
    data = train_baselines(real_workspace)
    train_version(data, "quick")
    set_active(workspace, "quick", False)  # no version changes during the replay
    home = str(real_workspace)
    tasks.issue_forecast(home, "manual")
    for _ in range(HORIZON):  # the tick's task functions: arrival (and live scoring), issue
        tasks.simulate_day(home, "manual")
        tasks.issue_forecast(home, "manual")
    tasks.evaluate(home, "manual")  # today d_1913: the backtest window is d_1886..d_1913

    data = WorkspaceData.open(home)
    ledger, metrics = ForecastLedger.of(workspace), MetricStore(workspace.runs_path)
    live = metrics.history(source="live", level=None)
    backtest = metrics.history()
    for name in ("quick", *BASELINES):
        issue = ledger.read_issue(name, TODAY)
        model = ForecastModel.load(workspace.home / "models" / name / issue.version)
        replayed = forecast_matrix(model, modeling.test_input(data), len(data.series)).astype(np.float32)
        np.testing.assert_array_equal(issue.values, replayed, err_msg=name)

        mine = live[(live["model"] == name) & (live["issue_day"] == TODAY)]
        window = mine[mine["horizon"] == 0].set_index("level")["value"]
        theirs = backtest[(backtest["model"] == name) & (backtest["sim_day"] == TODAY + HORIZON)]
        theirs = theirs.set_index("metric")["value"]
        assert len(window) == 13 and np.isclose(window[[str(k) for k in range(1, 13)]].mean(), window["all"])
        # the ledger keeps float32: equal to rounding (a relative 6e-8 per value)
        assert window["all"] == pytest.approx(theirs["wrmsse"], rel=1e-6), name
        daily = mine[mine["horizon"] > 0].pivot_table(index="horizon", columns="metric", values="value")
        assert list(daily.index) == list(range(1, HORIZON + 1))
        assert daily["mae"].mean() == pytest.approx(theirs["mae"], rel=1e-6), "28 days of 60 series each"
        assert np.sqrt((daily["rmse"] ** 2).mean()) == pytest.approx(theirs["rmse"], rel=1e-6)
    latest = live[live["sim_day"] == TODAY + HORIZON]
    assert sorted(latest.loc[latest["horizon"] > 0, "horizon"].unique()) == list(range(1, HORIZON + 1))
    records = json.loads(m5ops(real_workspace, "metrics", "--json", "--source", "live").stdout)
    assert {r["source"] for r in records} == {"live"} and all("horizon" in r and "issue_day" in r for r in records)


def test_each_issue_prunes_challengers_past_the_retention_and_keeps_the_serving_model(real_workspace):
    data = train_baselines(real_workspace)
    workspace = data.workspace
    workspace.write_config(dataclasses.replace(workspace.config(), keep_forecasts=30))
    tasks.evaluate(str(real_workspace), "manual")
    serving = serving_model_name(workspace)
    ledger = ForecastLedger.of(workspace)
    old = np.ones((60, HORIZON), np.float32)
    for day in range(TODAY - 40, TODAY):
        for name in BASELINES:
            ledger.write(Issue(name, "v1", day, old, ("holdback",) * HORIZON))
    tasks.issue_forecast(str(real_workspace), "manual")
    challenger = next(name for name in BASELINES if name != serving)
    assert ledger.issue_days(challenger) == list(range(TODAY - 29, TODAY + 1)), "issue days > today - 30 stay"
    assert ledger.issue_days(serving) == list(range(TODAY - 40, TODAY + 1)), "the serving model keeps all"


@pytest.mark.parametrize("value, words", [("5", "must be a whole number of days >= 28"),
                                          ("soon", "is not a number of days")])
def test_init_refuses_a_retention_shorter_than_an_issue_window(m5_dir, tmp_path, value, words):
    home = tmp_path / "ws"
    result = m5ops(home, "init", "--source", "m5", "--m5-dir", str(m5_dir), "--stores", "CA_1", "--days", "200",
                   "--keep-forecasts", value, check=False)
    assert result.returncode == 2 and words in result.stderr and not home.exists()


def test_init_keeps_the_retention_in_the_workspace_config(m5_dir, tmp_path):
    home = tmp_path / "ws"
    m5ops(home, "init", "--source", "m5", "--m5-dir", str(m5_dir), "--stores", "CA_1", "--days", "200",
          "--keep-forecasts", "all")
    assert Workspace(home).config().keep_forecasts is None
