"""Features: values by definition, no look-ahead, and the incremental path equal to the bulk one."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m5ops.data.feature_store import FeatureStore
from m5ops.data.features import HISTORY_DAYS, LAGS, ROLLING_MEANS, ROLLING_STDS, compute_block
from m5ops.data.store import DayStore
from m5ops.errors import DataError
from m5ops.pipeline.modeling import WorkspaceData
from m5ops.models.base import CATEGORICALS, FEATURES


@pytest.fixture
def panel():
    rng = np.random.default_rng(7)
    sales = rng.poisson(2.0, size=(6, 200)).astype(np.float32)
    sales[2] = 3.0  # a constant series: its rolling std must be exactly zero
    prices = np.repeat(rng.uniform(1, 9, size=(6, 200 // 7 + 1)), 7, axis=1)[:, :200].astype(np.float32)
    prices[4, :50] = np.nan  # not on sale before day 51
    return sales, prices


def test_feature_names_derive_from_the_declared_lags_windows_and_columns(panel):
    sales, prices = panel
    block = compute_block(sales, prices, first_day=1, out_start=1)
    derived = [f"lag_{k}" for k in LAGS] + [f"rmean_{w}" for w in ROLLING_MEANS] + [f"rstd_{w}" for w in ROLLING_STDS]
    assert FEATURES[:len(derived)] == derived and set(derived) <= set(block.columns)
    assert CATEGORICALS == ["item_id", "dept_id", "cat_id", "store_id", "state_id"]


@pytest.mark.parametrize("t", [90, 150, 199])
def test_lags_and_rolling_windows_follow_their_definitions(panel, t):
    sales, prices = panel
    block = compute_block(sales, prices, first_day=1, out_start=1)
    j = t  # column j is day j+1
    for k in (28, 35, 42, 49, 56):
        np.testing.assert_array_equal(block.columns[f"lag_{k}"][:, j], sales[:, j - k])
    for w in (7, 28, 56):
        expected = sales[:, j - 28 - w + 1: j - 28 + 1].mean(axis=1)
        np.testing.assert_allclose(block.columns[f"rmean_{w}"][:, j], expected, rtol=1e-6)
    for w in (7, 28):
        expected = sales[:, j - 28 - w + 1: j - 28 + 1].std(axis=1)
        np.testing.assert_allclose(block.columns[f"rstd_{w}"][:, j], expected, rtol=1e-5, atol=1e-6)
    assert block.columns["rstd_28"][2, j] == 0.0
    np.testing.assert_allclose(block.columns["price_change_week"][:, j], prices[:, j] / prices[:, j - 7] - 1, rtol=1e-6)


def test_features_are_nan_where_history_is_too_short(panel):
    sales, prices = panel
    block = compute_block(sales, prices, first_day=1, out_start=1)
    assert np.isnan(block.columns["lag_28"][:, 27]).all() and not np.isnan(block.columns["lag_28"][:, 28]).any()
    assert np.isnan(block.columns["rmean_56"][:, 82]).all() and not np.isnan(block.columns["rmean_56"][:, 83]).any()
    assert np.isnan(block.columns["price_rel_max"][4, :50]).all()


def test_no_feature_of_a_day_sees_sales_of_its_last_27_days(panel):
    sales, prices = panel
    t = 150
    changed = sales.copy()
    changed[:, t - 27:] += 100  # everything after t-28 changes
    a = compute_block(sales, prices, 1, 1)
    b = compute_block(changed, prices, 1, 1)
    for name in FEATURES:
        if name in a.columns:
            np.testing.assert_array_equal(a.columns[name][:, t], b.columns[name][:, t], err_msg=name)


def test_price_relative_to_the_running_maximum_never_looks_ahead(panel):
    sales, prices = panel
    prices = prices.copy()
    prices[0, :] = 2.0
    prices[0, 100:] = 4.0  # a later rise must not change earlier days
    block = compute_block(sales, prices, 1, 1)
    assert block.columns["price_rel_max"][0, 99] == 1.0 and block.columns["price_rel_max"][0, 100] == 1.0
    prices[0, 120:] = 3.0
    block = compute_block(sales, prices, 1, 1)
    assert block.columns["price_rel_max"][0, 130] == pytest.approx(0.75)


def test_one_day_built_from_recent_history_equals_the_bulk_build(real_workspace):
    data = WorkspaceData.open(real_workspace)
    store, features = DayStore(data.workspace.data_dir), FeatureStore(data.workspace.features_dir)
    from m5ops.data.arrival import calendar_through

    today = store.last_day()
    bulk = features.read(today - 2, today, data.series)
    for day in range(today - 2, today + 1):  # rebuild the last three days one at a time
        (features.root / f"day={day:06d}.parquet").unlink()
    for day in range(today - 2, today + 1):
        features.build_day(store, day, calendar_through(store, day))
    incremental = features.read(today - 2, today, data.series)
    pd.testing.assert_frame_equal(bulk, incremental)
    assert today - 2 - HISTORY_DAYS > store.first_day(), "the rebuild used a window, not the whole history"


def test_calendar_and_snap_features_follow_the_series_state(real_workspace):
    data = WorkspaceData.open(real_workspace)
    frame = data.features.read(data.split.today - 30, data.split.today, data.series)
    calendar = data.store.base_calendar().set_index("day")
    for state in ("CA", "TX"):
        rows = frame[frame["state_id"] == state]
        expected = calendar.loc[rows["day"].to_numpy(), f"snap_{state}"].to_numpy()
        np.testing.assert_array_equal(rows["snap"].to_numpy(), expected)
    np.testing.assert_array_equal(frame["wday"].to_numpy(), calendar.loc[frame["day"].to_numpy(), "wday"].to_numpy())


def test_reading_a_window_equals_each_day_read_on_its_own(real_workspace):
    data = WorkspaceData.open(real_workspace)
    features = FeatureStore(data.workspace.features_dir)
    today = data.split.today
    window = features.read(today - 9, today, data.series)
    days = [features.read(day, day, data.series) for day in range(today - 9, today + 1)]
    expected = pd.concat(days, ignore_index=True)
    for column in CATEGORICALS:  # concat of categoricals with equal categories keeps them
        expected[column] = expected[column].astype(window[column].dtype)
    pd.testing.assert_frame_equal(window, expected)
    assert "price_max" not in window and len(window) == 10 * len(data.series)
    chosen = features.read(today - 9, today, data.series, columns=["lag_28", "snap"])
    assert list(chosen.columns[:4]) == ["day", "lag_28", "series", "snap"]
    np.testing.assert_array_equal(chosen["lag_28"].to_numpy(), window["lag_28"].to_numpy())


def test_reading_refuses_a_backwards_window_and_a_day_file_of_other_types(real_workspace):
    data = WorkspaceData.open(real_workspace)
    features = FeatureStore(data.workspace.features_dir)
    today = data.split.today
    with pytest.raises(DataError, match="the last day is before the first"):
        features.read(today, today - 1, data.series)
    path = features.root / f"day={today:06d}.parquet"
    table = pq.read_table(path)
    index = table.schema.get_field_index("lag_28")
    pq.write_table(table.set_column(index, "lag_28", table.column("lag_28").cast(pa.float64())), path)
    with pytest.raises(DataError, match=rf"day={today:06d}.parquet: column lag_28 is float64, other days' are"
                                        r" float32; delete the file and run 'm5ops tick'"):
        features.read(today - 1, today, data.series)
