"""The command line as a user runs it: real processes, exit status 2 and one line on bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

M5OPS = [sys.executable, "-m", "m5ops.cli"]


def m5ops(home, *args, check=True):
    result = subprocess.run([*M5OPS, "--home", str(home), *args], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"m5ops {args} failed ({result.returncode}): {result.stderr}")
    return result


def test_status_reports_today_size_and_held_back_days(real_workspace):
    status = json.loads(m5ops(real_workspace, "status", "--json").stdout)
    assert status["today"] == "d_1885" and status["date"] == "2016-03-27"
    assert status["series"] == 60 and status["days"] == 344 and status["rows"] == 60 * 344
    assert status["held_back_days_left"] == 56 and status["runner_alive"] is False


def test_export_writes_the_long_table(real_workspace, tmp_path):
    out = tmp_path / "export.csv"
    m5ops(real_workspace, "export", "--start-day", "1880", "--end-day", "1885", "--out", str(out))
    table = pd.read_csv(out)
    assert list(table.columns) == ["id", "item_id", "dept_id", "cat_id", "store_id", "state_id", "d", "date",
                                   "sales", "sell_price"]
    assert len(table) == 60 * 6 and table["d"].iloc[0] == "d_1880" and table["date"].iloc[-1] == "2016-03-27"


@pytest.mark.parametrize("args, words", [
    (["create", "../x", "--kind", "lightgbm"], "[a-z0-9]"),
    (["create", "Big", "--kind", "lightgbm"], "[a-z0-9]"),
    (["create", "new-model", "--kind", "prophet"], "unknown model kind 'prophet'"),
    (["create", "new-model", "--kind", "lightgbm", "--param", "num_leaves=-3"], "num_leaves"),
    (["create", "new-model", "--kind", "lightgbm", "--param", "colour=red"], "colour"),
    (["create", "new-model", "--kind", "lightgbm", "--param", "oops"], "KEY=VALUE"),
    (["create", "lightgbm", "--kind", "lightgbm"], "already exists"),
    (["train", "nosuch"], "nosuch"),
    (["pause", "nosuch"], "nosuch"),
    (["delete", "nosuch"], "nosuch"),
    (["export", "--start-day", "1", "--end-day", "5", "--out", "x.csv"], "not all stored"),
    (["tick", "--days", "0"], "at least 1"),
])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(real_workspace, args, words):
    registry = (real_workspace / "registry.json").read_bytes()
    result = m5ops(real_workspace, *args, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert (real_workspace / "registry.json").read_bytes() == registry


def test_commands_need_a_workspace(tmp_path):
    result = m5ops(tmp_path / "none", "status", check=False)
    assert result.returncode == 2 and "m5ops --home" in result.stderr and "init" in result.stderr


def test_create_pause_resume_delete_round_trip(real_workspace):
    m5ops(real_workspace, "create", "quick", "--kind", "lightgbm", "--param", "num_boost_round=20", "--paused")
    models = json.loads(m5ops(real_workspace, "models", "--json").stdout)["models"]
    assert models["quick"]["params"]["num_boost_round"] == 20 and models["quick"]["schedule"]["active"] is False
    m5ops(real_workspace, "resume", "quick")
    assert json.loads(m5ops(real_workspace, "models", "--json").stdout)["models"]["quick"]["schedule"]["active"]
    m5ops(real_workspace, "delete", "quick")
    listing = json.loads(m5ops(real_workspace, "models", "--json").stdout)
    assert "quick" not in listing["models"] and listing["deleted"]["quick"]


def test_manual_training_evaluation_and_forecast_in_m5_layout(real_workspace, tmp_path):
    m5ops(real_workspace, "pause", "seasonal-naive")
    trained = m5ops(real_workspace, "train", "seasonal-naive")
    assert "succeeded" in trained.stdout
    model = json.loads(m5ops(real_workspace, "models", "--json").stdout)["models"]["seasonal-naive"]
    assert model["current_version"] == "v1" and model["schedule"]["active"], "a manual training resumes"
    out = tmp_path / "forecast.csv"
    m5ops(real_workspace, "forecast", "--model", "seasonal-naive", "--backtest", "--out", str(out))
    forecast = pd.read_csv(out)
    assert list(forecast.columns) == ["id", *[f"F{i}" for i in range(1, 29)]] and len(forecast) == 60
    assert forecast["id"].str.endswith("_evaluation").all()
    m5ops(real_workspace, "evaluate", "seasonal-naive")
    metrics = pd.DataFrame(json.loads(m5ops(real_workspace, "metrics", "--json").stdout))
    assert set(metrics["metric"]) == {"mae", "wmape", "rmse", "tweedie", "wrmsse"}
    assert (metrics["model"] == "seasonal-naive").all() and (metrics["value"] >= 0).all()
    runs = json.loads(m5ops(real_workspace, "runs", "--json").stdout)
    assert [r["task"] for r in runs] == ["evaluate", "train"] and all(r["status"] == "succeeded" for r in runs)
    for run in runs:
        assert run["output"].endswith(f"-{run['id']}.ipynb") and "2016-03-27" in run["output"]
