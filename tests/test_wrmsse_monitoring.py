"""WRMSSE in daily monitoring: 12 levels recorded per evaluation, the series left out, and how the
CLI and the dashboard show them (never inf or NaN)."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m5ops.dashboard.charts import MetricChart
from m5ops.dashboard.models_panel import row_cells
from m5ops.dashboard.state import (
    WorkspaceReader, excluded_from_rows, latest_excluded, latest_from_rows, model_rows,
)
from m5ops.data.m5files import write_m5_files
from m5ops.data.synthetic import generate
from m5ops.evaluation.hierarchy import METRIC_LEVELS
from m5ops.evaluation.metrics import evaluate_forecast, format_score
from m5ops.pipeline import lifecycle, tasks
from m5ops.pipeline.arrival import arrive_next_day
from m5ops.pipeline.modeling import WorkspaceData, wrmsse_for
from m5ops.pipeline.workspace_init import InitOptions, init_workspace
from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import MetricStore

M5OPS = [sys.executable, "-m", "m5ops.cli"]
BASELINES = ("seasonal-naive", "moving-average")
FLAT_FROM = 180  # the crafted series sells 2 units every day from this day on: it never gets a scale


def m5ops(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*M5OPS, "--home", str(home), *args], capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"m5ops {args} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


def flat_launch_workspace(root: Path) -> tuple[Workspace, int]:
    """The synthetic generator's data (1 item per department, 300 days) as M5 files, one series
    made to launch on FLAT_FROM and never change; a workspace of them with only the baselines."""
    data = generate(1, n_days=300, seed=0)
    priced = np.isfinite(data.prices[:, FLAT_FROM - 1:]).all(axis=1)
    flat = int(np.flatnonzero(priced)[0])
    sales = data.sales.copy()
    sales[flat, :FLAT_FROM - 1], sales[flat, FLAT_FROM - 1:] = 0, 2
    write_m5_files(dataclasses.replace(data, sales=sales), root / "m5")
    workspace = init_workspace(root / "ws", InitOptions(source="m5", m5_dir=str(root / "m5"), progress=False))
    for name in set(lifecycle.DEFAULT_MODELS) - set(BASELINES):
        lifecycle.delete_model(workspace, name)
    return workspace, flat


def tick_in_process(workspace: Workspace, days: int) -> None:
    """Arrival and evaluation of ``days`` days by the task functions (no notebooks), baselines trained first."""
    for name in BASELINES:
        tasks.train(str(workspace.home), "test-train", name)
    for _ in range(days):
        arrive_next_day(workspace)
        tasks.evaluate(str(workspace.home), "test-evaluate")


@pytest.fixture(scope="module")
def flat_template(tmp_path_factory) -> tuple[Path, int]:
    """The flat-launch workspace after 3 evaluated days, made once."""
    workspace, flat = flat_launch_workspace(tmp_path_factory.mktemp("flat"))
    tick_in_process(workspace, 3)
    return workspace.home, flat


# --- what is stored ------------------------------------------------------------------------------

def test_record_levels_stores_every_level_in_one_go_and_replaces_each_scope(tmp_path):
    store = MetricStore(tmp_path / "runs.db")
    levels = {"all": {"mae": 1.0, "wmape": None, "wrmsse": 0.7}, **{str(k): {"wrmsse": k / 10} for k in range(1, 13)}}
    excluded = {"all": 3, **{str(k): int(k == 12) * 3 for k in range(1, 13)}}
    store.record_levels(10, "2011-02-07", "m", "v1", levels, (1, 10), "r1", excluded=excluded)
    store.record_levels(10, "2011-02-07", "m", "v1", {"all": {"mae": 2.0, "wrmsse": float("inf")}}, (1, 10), "r2",
                        excluded={"all": 1})
    every = store.history(level=None)
    assert len(every) == 2 + 12  # the overall scope replaced whole, the 12 levels kept
    overall = store.history().set_index("metric")
    assert overall.loc["mae", "value"] == 2.0 and pd.isna(overall.loc["wrmsse", "value"])  # inf: stored as no value
    assert pd.isna(overall.loc["mae", "excluded"]) and overall.loc["wrmsse", "excluded"] == 1  # the WRMSSE row only
    level_12 = store.history_of("wrmsse", level="12")
    assert level_12[["value", "excluded"]].to_dict("records") == [{"value": 1.2, "excluded": 3}]
    assert sorted(store.history(level=None)["level"].unique()) == sorted(METRIC_LEVELS)


def test_wmape_of_a_window_without_sales_is_no_value_with_a_reason():
    scores = evaluate_forecast(np.zeros((2, 3)), np.ones((2, 3)))
    assert scores["wmape"] is None and scores["mae"] == 1.0
    assert format_score("wmape", scores["wmape"]) == "n/a: no sales in the window"
    assert format_score("wmape", float("nan")) == "n/a: no sales in the window"  # NaN is how pandas reads a NULL
    assert format_score("mae", math.inf).startswith("n/a: not finite")
    assert format_score("mae", 0.123456) == "0.1235"


def test_each_evaluation_records_13_wrmsse_rows_with_what_each_level_left_out(flat_template):
    home, flat = flat_template
    history = MetricStore(Path(home) / "runs.db").history(source="backtest", level=None)
    wrmsse = history[history.metric == "wrmsse"]
    assert len(wrmsse) == 3 * len(BASELINES) * 13
    assert set(wrmsse.groupby(["sim_day", "model"])["level"].apply(frozenset)) == {frozenset(METRIC_LEVELS)}
    assert np.isfinite(history.value.dropna()).all() and not history.value.isna().any()
    evaluator = wrmsse_for(WorkspaceData.open(home))  # today's window, as the last evaluation saw it
    weights = evaluator.weights
    bottom = weights[weights.level == "Level12"].reset_index(drop=True)
    assert bottom.loc[flat, "scale"] == 0 and bottom.loc[flat, "weight"] > 0 and bottom.loc[flat, "scaled_weight"] == 0
    last = wrmsse[wrmsse.sim_day == wrmsse.sim_day.max()].set_index(["model", "level"])["excluded"]
    left_out = ((weights.weight > 0) & (weights.scale == 0)).groupby(weights.level).sum()
    for model in BASELINES:
        assert last[(model, "12")] == left_out["Level12"] >= 1
        assert last[(model, "all")] == left_out.sum()


# --- the command line ----------------------------------------------------------------------------

def test_metrics_level_option_and_the_left_out_note(flat_template):
    home, _ = flat_template
    rows = json.loads(m5ops(home, "metrics", "--json", "--level", "12").stdout)
    assert {r["level"] for r in rows} == {"12"} and {r["metric"] for r in rows} == {"wrmsse"}
    assert all(r["excluded"] >= 1 and r["note"].endswith("series without a scale left out") for r in rows)
    overall = json.loads(m5ops(home, "metrics", "--json").stdout)
    assert {r["level"] for r in overall} == {"all"} and {r["metric"] for r in overall} == {
        "mae", "wmape", "rmse", "tweedie", "wrmsse"}
    text = m5ops(home, "metrics", "--level", "12").stdout
    assert text.startswith("backtest:\nWRMSSE at level 12 (item x store)") and "series without a scale left out" in text
    assert "series without a scale left out" in m5ops(home, "metrics").stdout


@pytest.mark.parametrize("level", ["0", "13", "Level12", "total"])
def test_metrics_refuses_a_bad_level_with_status_2(flat_template, level):
    home, _ = flat_template
    done = m5ops(home, "metrics", "--level", level, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert f"--level {level!r} is not a level" in done.stderr and "1-12" in done.stderr


@pytest.mark.slow
def test_no_inf_or_nan_on_the_embedded_default_after_ticks_through_the_cli(tmp_path):
    home = tmp_path / "ws"
    m5ops(home, "init")
    for name in set(lifecycle.DEFAULT_MODELS) - set(BASELINES):
        m5ops(home, "delete", name)
    m5ops(home, "tick", "--days", "2")  # the first tick trains the baselines; the second evaluates them
    for level in ("all", "1", "12"):
        text = m5ops(home, "metrics", "--json", "--level", level).stdout
        assert "NaN" not in text and "Infinity" not in text
        rows = json.loads(text)
        assert {r["model"] for r in rows} == set(BASELINES) and len(rows) == len(BASELINES) * (5 if level == "all" else 1)
        assert all(r["value"] is not None and math.isfinite(r["value"]) for r in rows)
    table = m5ops(home, "metrics").stdout.lower()
    assert "nan" not in table.split() and "inf" not in table


# --- the dashboard, below the browser --------------------------------------------------------------

def test_models_table_shows_the_left_out_note_beside_wrmsse_and_na_with_its_reason():
    rows = [("a", "v1", "mae", 1.5, None), ("a", "v1", "wmape", None, None), ("a", "v1", "wrmsse", 0.71, 3)]
    models = {"a": {"kind": "seasonal_naive", "schedule": {"active": True}, "versions": [{"id": "v1", "sim_date": "x"}],
                    "current_version": "v1"}}
    row, = model_rows(models, latest_from_rows(rows), [], excluded_from_rows(rows))
    assert (row.excluded, row.undefined) == (3, ("wmape",))
    assert row.note == "WMAPE n/a: no sales in the window; 3 series without a scale left out"
    html = row_cells(row)
    assert "<span class='m5-col-wmape'" in html and ">n/a</span>" in html and ">-</span>" in html  # rmse: never
    assert html.index("m5-col-wrmsse") < html.index("m5-col-note") and "0.71<" in html


def test_level_picker_serves_wrmsse_only_and_labels_the_chart(flat_template):
    home, _ = flat_template
    reader = WorkspaceReader(home)
    chart = MetricChart()
    assert chart.level.disabled and chart.chosen_level() == "all"
    chart.metric.value = "wrmsse"
    chart.level.value = "12"
    assert not chart.level.disabled and chart.chosen_level() == "12"
    snap = reader.snapshot(chart.metric.value, chart.scope.value, chart.chosen_level())
    assert snap.level == "12" and len(snap.history) == 3 * len(BASELINES)
    chart.update(snap.history, snap.live, snap.deleted, snap.metric, snap.scope, snap.level)
    assert chart.figure.axes[1].label == "WRMSSE, level 12 (item x store)"
    assert np.isfinite(np.asarray(chart.lines.y)).all() and np.asarray(chart.lines.y).shape == (2, 3)
    assert chart.note.value.count("series without a scale left out") == len(BASELINES)
    chart.metric.value = "mae"  # other metrics have no levels
    assert chart.level.disabled and chart.chosen_level() == "all"
    assert reader.snapshot("mae", chart.scope.value, "12").level == "all"


def test_latest_excluded_takes_each_models_newest_day():
    frame = pd.DataFrame({"sim_day": [1, 2, 1, 2], "model": ["a", "a", "b", "b"], "version": "v1",
                          "metric": "wrmsse", "value": 0.5, "excluded": pd.array([4, 0, 0, 2], dtype="Int64")})
    assert latest_excluded(frame, ["a", "b"]) == {"b": 2}
