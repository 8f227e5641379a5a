"""The metrics history in runs.db."""
from __future__ import annotations

import pytest

from m5ops.stores.metrics import MetricStore


@pytest.fixture
def store(tmp_path):
    return MetricStore(tmp_path / "runs.db")


def test_metrics_for_the_same_day_are_replaced_not_duplicated(store):
    store.record(1914, "2016-04-25", "m", "v1", {"mae": 1.0, "rmse": 2.0}, (1887, 1914), "r1")
    store.record(1914, "2016-04-25", "m", "v1", {"mae": 1.5}, (1887, 1914), "r2")
    store.record(1915, "2016-04-26", "m", "v1", {"mae": 1.2, "wmape": float("nan")}, (1888, 1915))
    store.record(1915, "2016-04-26", "n", "v3", {"mae": 9.0}, (1888, 1915))
    frame = store.history("m")
    assert list(frame.columns[:8]) == ["sim_day", "sim_date", "model", "version", "metric", "value",
                                       "window_start", "window_end"]
    assert frame[["sim_day", "metric", "value"]].to_dict("records")[:2] == [
        {"sim_day": 1914, "metric": "mae", "value": 1.5},
        {"sim_day": 1915, "metric": "mae", "value": 1.2}]
    assert frame["value"].isna().sum() == 1 and len(frame) == 3
    assert frame.loc[0, "run_id"] == "r2" and frame.loc[0, "window_start"] == 1887
    assert len(store.history()) == 4

def test_empty_metrics_history_has_the_columns(store):
    frame = store.history()
    assert frame.empty and "value" in frame.columns and str(frame["sim_day"].dtype) == "int64"


def test_a_schema_2_file_keeps_its_metrics_as_overall_backtest_rows(tmp_path):
    import sqlite3

    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE metrics (sim_day INTEGER NOT NULL, sim_date TEXT NOT NULL, model TEXT NOT NULL,"
                     " version TEXT NOT NULL, metric TEXT NOT NULL, value REAL, window_start INTEGER,"
                     " window_end INTEGER, run_id TEXT, PRIMARY KEY (sim_day, model, version, metric))")
        conn.execute("INSERT INTO metrics VALUES (1914, '2016-04-25', 'm', 'v1', 'mae', 1.5, 1887, 1914, 'r1')")
        conn.execute("PRAGMA user_version = 2")
    store = MetricStore(path)
    (row,) = store.history().to_dict("records")
    assert (row["value"], row["source"], row["level"], row["horizon"], row["run_id"]) == (1.5, "backtest", "all", 0, "r1")
    store.record(1914, "2016-04-25", "m", "v1", {"mae": 9.0}, (1887, 1914), source="live", horizon=3, issue_day=1911)
    assert store.history()["value"].tolist() == [1.5]  # live rows are their own scope
    assert store.history(source="live")["horizon"].tolist() == [3]
