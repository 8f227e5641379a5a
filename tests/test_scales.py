"""The running WRMSSE scale sums: their arithmetic, the file that keeps them, and a workspace keeping them current.

The real-slice tests compare against an independent computation written here with plain
pandas and numpy (a groupby per level, leading zeros cut, ``np.diff``), never through
``Hierarchy`` or ``ScaleState``.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m5ops.data.feature_store import FeatureStore
from m5ops.data.schema import HIERARCHY
from m5ops.data.store import DayStore
from m5ops.errors import DataError, StoreError
from m5ops.evaluation.hierarchy import LEVELS, Hierarchy
from m5ops.evaluation.scales import NOT_STARTED, ScaleState
from m5ops.evaluation.wrmsse import WRMSSE
from m5ops.pipeline import scales as workspace_scales
from m5ops.pipeline.arrival import arrive_next_day
from m5ops.pipeline import modeling
from m5ops.stores.layout import Workspace
from m5ops.stores.scales import ScaleStore

RELATIVE = 1e-9


# --- the arithmetic ------------------------------------------------------------------------------

def _random_history(seed: int, nodes: int = 40, days: int = 90) -> np.ndarray:
    """Whole-number histories with late starts, flat stretches and series that never start."""
    rng = np.random.default_rng(seed)
    values = rng.poisson(rng.uniform(0.2, 4, (nodes, 1)), (nodes, days)).astype(float)
    starts = rng.integers(0, days + 10, nodes)  # some start after the end: never sold
    values[np.arange(days)[None, :] < starts[:, None]] = 0
    values[:3, 40:] = 2.0  # flat once they reach day 40
    return values


def _equal(a: ScaleState, b: ScaleState) -> None:
    assert a.last_day == b.last_day
    for name, value in a.arrays().items():
        np.testing.assert_array_equal(value, b.arrays()[name], err_msg=name)


def test_scale_of_one_history_by_hand():
    state = ScaleState.empty(3, 0).advance(np.array([[0, 0, 3, 3, 5], [0, 0, 0, 0, 0], [0, 0, 0, 0, 7]]))
    assert state.first_day.tolist() == [3, NOT_STARTED, 5]  # day numbers start at 1
    assert state.steps.tolist() == [2, 0, 0] and state.sum_sq.tolist() == [4.0, 0.0, 0.0]
    assert state.scales().tolist() == [2.0, 0.0, 0.0]  # (0^2 + 2^2) / 2; never sold; first sold on the last day


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_day_by_day_blocks_and_one_pass_give_the_same_state(seed):
    values = _random_history(seed)
    one_pass = ScaleState.empty(len(values), 10).advance(values)
    daily = ScaleState.empty(len(values), 10)
    for day in range(values.shape[1]):
        daily = daily.advance(values[:, day])
    blocks = ScaleState.empty(len(values), 10)
    for start in range(0, values.shape[1], 17):
        blocks = blocks.advance(values[:, start:start + 17])
    _equal(daily, one_pass)
    _equal(blocks, one_pass)
    assert one_pass.last_day == 10 + values.shape[1]


@pytest.mark.parametrize("cutoff", [1, 30, 39, 40, 41, 89, 90])
def test_rewinding_gives_the_state_built_up_to_the_cutoff(cutoff):
    values = _random_history(3)
    full = ScaleState.empty(len(values), 0).advance(values)
    direct = ScaleState.empty(len(values), 0).advance(values[:, :cutoff])
    _equal(full.rewind(cutoff, values[:, cutoff - 1:]), direct)


def test_state_refuses_values_that_do_not_fit():
    state = ScaleState.empty(4, 0).advance(np.ones((4, 5)))
    with pytest.raises(DataError, match=r"expected \(4, n_days\)"):
        state.advance(np.ones((3, 1)))
    with pytest.raises(DataError, match="NaN or inf"):
        state.advance(np.full((4, 1), np.nan))
    with pytest.raises(DataError, match="days 3..5"):
        state.rewind(3, np.ones((4, 2)))
    with pytest.raises(DataError, match="disagree"):
        state.rewind(3, np.full((4, 3), 2.0))
    with pytest.raises(DataError, match="incomplete"):
        ScaleState.from_arrays(5, {"sum_sq": np.zeros(4)})


# --- the real slice against an independent full-history computation ------------------------------

@functools.lru_cache(maxsize=1)
def _slice(folder: str):
    """(series table, wide sales, daily prices) of the real slice, read with pandas alone."""
    path = Path(folder)
    wide = pd.read_csv(path / "sales_train_evaluation.csv.gz")
    calendar = pd.read_csv(path / "calendar.csv")
    weekly = pd.read_csv(path / "sell_prices.csv.gz")
    days = [c for c in wide.columns if c.startswith("d_")]
    series = wide[["id", *HIERARCHY]]
    week_of_day = calendar.set_index("d").loc[days, "wm_yr_wk"].to_numpy()
    by_week = weekly.pivot_table(index=["store_id", "item_id"], columns="wm_yr_wk", values="sell_price")
    by_week = by_week.reindex(pd.MultiIndex.from_frame(series[["store_id", "item_id"]]))
    return series, wide[days].to_numpy(dtype=float), by_week.reindex(columns=week_of_day).to_numpy()


def independent_wrmsse(series: pd.DataFrame, history: np.ndarray, prices: np.ndarray,
                       actual: np.ndarray, predicted: np.ndarray) -> tuple[float, dict[str, pd.DataFrame]]:
    """M5's WRMSSE straight from its definition: per level, group the series, scale each group from
    its first non-zero day, weight it by its last 28 days' dollar sales. Also each level's table."""
    frame = series[HIERARCHY].astype(str).reset_index(drop=True)
    history, prices = np.asarray(history, dtype=float), np.asarray(prices, dtype=float)  # the store keeps float32
    dollars = np.nansum(history[:, -28:] * prices[:, -28:], axis=1)
    scores, tables = [], {}
    for level, keys in LEVELS.items():
        group = frame[list(keys)].apply(tuple, axis=1) if keys else pd.Series(["Total"] * len(frame))
        rows = []
        for _, index in group.groupby(group).groups.items():
            past = history[index].sum(axis=0)
            nonzero = np.flatnonzero(past)
            tail = past[nonzero[0]:] if len(nonzero) else past[:0]
            scale = np.mean(np.diff(tail) ** 2) if len(tail) > 1 else 0.0
            error = (actual[index] - predicted[index]).sum(axis=0)
            rows.append({"dollars": dollars[index].sum(), "scale": scale, "mse": np.mean(error ** 2)})
        table = pd.DataFrame(rows)
        usable = table[(table.scale > 0)]
        weights = usable.dollars / usable.dollars.sum()
        scores.append(float((weights * np.sqrt(usable.mse / usable.scale)).sum()))
        tables[level] = table
    return float(np.mean(scores)), tables


@pytest.mark.real_data
@pytest.mark.parametrize("cutoff", [1100, 1913])
def test_incremental_wrmsse_equals_the_full_history_computation_on_the_real_slice(m5_dir, cutoff):
    series, sales, prices = _slice(str(m5_dir))
    hierarchy = Hierarchy.of(series)
    state = ScaleState.empty(hierarchy.n_nodes, 0)
    for day in range(cutoff + 28):  # one day at a time, as the arrivals do, to the end of the window
        state = state.advance(hierarchy.aggregate(sales[:, day:day + 1]))
    at_cutoff = state.rewind(cutoff, hierarchy.aggregate(sales[:, cutoff - 1:cutoff + 28]))
    evaluator = WRMSSE.from_scales(hierarchy, at_cutoff.scales(), sales[:, cutoff - 28:cutoff],
                                   prices[:, cutoff - 28:cutoff])
    actual = sales[:, cutoff:cutoff + 28]
    seasonal = np.tile(sales[:, cutoff - 7:cutoff], 4)
    expected, tables = independent_wrmsse(series, sales[:, :cutoff], prices[:, :cutoff], actual, seasonal)
    assert evaluator.score(actual, seasonal).overall == pytest.approx(expected, rel=RELATIVE)
    assert evaluator.score(actual, actual).overall == 0.0
    ours = evaluator.weights.set_index("level")
    for level, table in tables.items():  # every node's scale, in the level's own order
        assert sorted(ours.loc[[level], "scale"]) == pytest.approx(sorted(table.scale), rel=RELATIVE, abs=0)


# --- the state file ------------------------------------------------------------------------------

def test_state_file_round_trips_and_refuses_what_it_cannot_read(tmp_path):
    store = ScaleStore(tmp_path / "scales.npz")
    assert store.read() is None and store.last_day() is None
    state = ScaleState.empty(5, 0).advance(np.arange(10.0).reshape(5, 2))
    store.write(state.arrays(), last_day=state.last_day, key="abc")
    stored = store.read()
    assert (stored.last_day, stored.key) == (2, "abc")
    _equal(ScaleState.from_arrays(stored.last_day, stored.arrays), state)
    with pytest.raises(StoreError, match="metadata"):
        store.write({"key": np.zeros(1)}, last_day=3, key="abc")
    assert store.read().last_day == 2  # the refused write changed nothing
    store.path.write_bytes(b"not a zip")
    with pytest.raises(StoreError, match="cannot be read.*rebuilt"):
        store.read()
    assert store.last_day() is None


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from m5ops.stores.scales import ScaleStore
    store = ScaleStore(sys.argv[1])
    arrays = {"sum_sq": np.zeros(400_000), "steps": np.zeros(400_000, dtype=np.int64)}
    day = 0
    while True:
        day += 1
        arrays["sum_sq"][:] = day
        store.write(arrays, last_day=day, key="k")
        print(day, flush=True)
""")


def test_a_writer_killed_mid_write_leaves_the_previous_state_whole(tmp_path):
    path = tmp_path / "scales.npz"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):
            writer.stdout.readline()  # a few whole writes are done
        time.sleep(0.05)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    stored = ScaleStore(path).read()
    assert stored.last_day >= 3 and (stored.arrays["sum_sq"] == stored.last_day).all()


# --- a workspace keeping its state current ---------------------------------------------------------

def _rebuilt(workspace: Workspace) -> ScaleState:
    """The state built from the whole store in one pass, for comparison."""
    store = DayStore(workspace.data_dir)
    hierarchy = Hierarchy.of(store.series())
    sales, _ = store.read_matrix(store.first_day(), store.last_day())
    return ScaleState.of_sales(hierarchy, sales, store.first_day())


def _saved(workspace: Workspace) -> ScaleState:
    stored = ScaleStore(workspace.scales_path).read()
    return ScaleState.from_arrays(stored.last_day, stored.arrays)


@pytest.mark.real_data
def test_init_and_arrivals_keep_the_state_of_the_whole_store(real_workspace):
    workspace = Workspace(real_workspace)
    _equal(_saved(workspace), _rebuilt(workspace))  # built at init
    for _ in range(3):
        arrive_next_day(workspace)
    saved = _saved(workspace)
    assert saved.last_day == DayStore(workspace.data_dir).last_day() == 1888
    _equal(saved, _rebuilt(workspace))


@pytest.mark.real_data
def test_workspace_wrmsse_equals_the_full_history_computation(real_workspace, m5_dir):
    workspace = Workspace(real_workspace)
    arrive_next_day(workspace)
    data = modeling.WorkspaceData.open(real_workspace)
    start, _ = data.split.test_range()
    inp = modeling.test_input(data)
    actual = modeling.actual_matrix(inp, len(data.series))
    history, prices = data.store.read_matrix(data.store.first_day(), start - 1)
    rng = np.random.default_rng(0)
    predicted = np.maximum(actual + rng.normal(0, 1, actual.shape), 0)
    expected, _ = independent_wrmsse(data.series, history, prices, actual, predicted)
    assert modeling.wrmsse_for(data).score(actual, predicted).overall == pytest.approx(expected, rel=RELATIVE)


@pytest.mark.real_data
def test_a_state_behind_the_store_is_caught_up_and_a_broken_one_rebuilt(real_workspace):
    workspace = Workspace(real_workspace)
    before = workspace.scales_path.read_bytes()
    for _ in range(2):
        arrive_next_day(workspace)
    workspace.scales_path.write_bytes(before)  # as if both arrivals had crashed before saving the state
    assert ScaleStore(workspace.scales_path).last_day() == 1885
    _equal(workspace_scales.current_scales(workspace), _rebuilt(workspace))
    assert ScaleStore(workspace.scales_path).last_day() == 1887  # and saved
    for broken in (b"garbage", None):
        if broken is None:
            workspace.scales_path.unlink()
        else:
            workspace.scales_path.write_bytes(broken)
        _equal(workspace_scales.current_scales(workspace), _rebuilt(workspace))
    saved = _saved(workspace)
    ScaleStore(workspace.scales_path).write(saved.arrays(), last_day=saved.last_day, key="other series")
    _equal(workspace_scales.current_scales(workspace), _rebuilt(workspace))


@pytest.mark.real_data
def test_a_state_that_disagrees_with_the_store_is_rebuilt(real_workspace):
    workspace = Workspace(real_workspace)
    saved = _saved(workspace)
    wrong = {**saved.arrays(), "last_value": saved.last_value + 1}
    ScaleStore(workspace.scales_path).write(wrong, last_day=saved.last_day,
                                            key=Hierarchy.of(DayStore(workspace.data_dir).series()).key)
    _equal(workspace_scales.current_scales(workspace), saved)


class Refused(Exception):
    """The fault a test injects."""


@pytest.mark.real_data
@pytest.mark.parametrize("failing", ["features", "scales"])
def test_a_failed_arrival_leaves_store_features_and_state_as_they_were(real_workspace, monkeypatch, failing):
    workspace = Workspace(real_workspace)
    before = workspace.scales_path.read_bytes()
    target = (FeatureStore, "build_day") if failing == "features" else (ScaleStore, "write")

    def refuse(*args, **kwargs):
        raise Refused(f"{failing} refused")
    monkeypatch.setattr(*target, refuse)
    with pytest.raises(Refused):
        arrive_next_day(workspace)
    assert DayStore(workspace.data_dir).last_day() == 1885
    assert max(FeatureStore(workspace.features_dir).stored_days()) == 1885
    assert workspace.scales_path.read_bytes() == before
    monkeypatch.undo()
    arrive_next_day(workspace)  # the next attempt goes through
    _equal(_saved(workspace), _rebuilt(workspace))
