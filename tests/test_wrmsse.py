"""WRMSSE by hand on a 2 stores x 2 items hierarchy, its edge cases, and on the real M5 slice."""
import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m5ops.errors import DataError, ParameterError
from m5ops.evaluation.wrmsse import LEVELS, WRMSSE, wrmsse

# Items A = FOODS_1_001, B = FOODS_1_002 in stores CA_1 and CA_2 of one state, dept and category:
# levels 1, 2, 4, 5, 6, 7 are the total; 3, 8, 9 the stores; 10, 11 the items; 12 the bottom.
TINY_SERIES = pd.DataFrame({
    "id": ["FOODS_1_001_CA_1", "FOODS_1_002_CA_1", "FOODS_1_001_CA_2", "FOODS_1_002_CA_2"],
    "item_id": ["FOODS_1_001", "FOODS_1_002", "FOODS_1_001", "FOODS_1_002"],
    "dept_id": "FOODS_1", "cat_id": "FOODS",
    "store_id": ["CA_1", "CA_1", "CA_2", "CA_2"], "state_id": "CA",
})
TINY_SALES = np.array([
    [0, 1, 2, 1],  # A1: from day 2, steps 1, -1 -> scale 1
    [2, 2, 4, 2],  # B1: steps 0, 2, -2 -> scale 8/3
    [1, 3, 1, 3],  # A2: steps 2, -2, 2 -> scale 4
    [0, 0, 1, 2],  # B2: from day 3, step 1 -> scale 1
])
# B2 has no price before it went on sale: NaN, counted as 0 dollars.
TINY_PRICES = np.array([[1.0] * 4, [2.0] * 4, [1.0] * 4, [np.nan, np.nan, 2.0, 2.0]])
# Dollar sales over the last 3 days: A1 4, B1 16, A2 7, B2 6 (day 2: NaN price, 0 units); total 33.
TINY_TRUE = np.array([[1, 2], [2, 2], [2, 2], [1, 1]])
TINY_PRED = np.array([[2, 2], [2, 2], [1, 1], [1, 3]])  # errors A1 (-1, 0), B1 0, A2 (1, 1), B2 (0, -2)


def _tiny() -> WRMSSE:
    return WRMSSE(TINY_SERIES, TINY_SALES, TINY_PRICES, weight_days=3)


def _row(weights: pd.DataFrame, level: str, key_1: str, key_2: str = "X") -> pd.Series:
    rows = weights[(weights.level == level) & (weights.agg_level_1 == key_1) & (weights.agg_level_2 == key_2)]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.mark.parametrize("level, key_1, key_2, dollars, scale", [
    ("Level1", "Total", "X", 33, 13 / 3),          # total [3, 6, 8, 8]: steps 3, 2, 0
    ("Level2", "CA", "X", 33, 13 / 3),
    ("Level3", "CA_1", "X", 20, 19 / 3),           # [2, 3, 6, 3]: steps 1, 3, -3
    ("Level3", "CA_2", "X", 13, 14 / 3),           # [1, 3, 2, 5]: steps 2, -1, 3
    ("Level6", "CA", "FOODS", 33, 13 / 3),
    ("Level7", "CA", "FOODS_1", 33, 13 / 3),
    ("Level8", "CA_1", "FOODS", 20, 19 / 3),
    ("Level9", "CA_2", "FOODS_1", 13, 14 / 3),
    ("Level10", "FOODS_1_001", "X", 11, 11 / 3),   # [1, 4, 3, 4]: steps 3, -1, 1
    ("Level11", "CA", "FOODS_1_002", 22, 10 / 3),  # [2, 2, 5, 4]: steps 0, 3, -1
    ("Level12", "FOODS_1_001", "CA_1", 4, 1),
    ("Level12", "FOODS_1_002", "CA_1", 16, 8 / 3),
    ("Level12", "FOODS_1_001", "CA_2", 7, 4),
    ("Level12", "FOODS_1_002", "CA_2", 6, 1),
])
def test_weights_and_scales_match_hand_computation(level, key_1, key_2, dollars, scale):
    row = _row(_tiny().weights, level, key_1, key_2)
    assert row.dollar_sales == pytest.approx(dollars)
    assert row.weight == pytest.approx(dollars / 33)
    assert row.scale == pytest.approx(scale)


def test_tiny_hierarchy_scores_as_computed_by_hand():
    total = math.sqrt(0.5 / (13 / 3))                                      # errors (0, -1)
    stores = 20 / 33 * math.sqrt(0.5 / (19 / 3)) + 13 / 33 * math.sqrt(1 / (14 / 3))
    items = 11 / 33 * math.sqrt(0.5 / (11 / 3)) + 22 / 33 * math.sqrt(2 / (10 / 3))
    bottom = 4 / 33 * math.sqrt(0.5 / 1) + 16 / 33 * 0 + 7 / 33 * math.sqrt(1 / 4) + 6 / 33 * math.sqrt(2 / 1)
    by_level = _tiny().score_by_level(TINY_TRUE, TINY_PRED)
    expected = [total, total, stores, total, total, total, total, stores, stores, items, items, bottom]
    assert list(by_level.index) == [f"Level{i}" for i in range(1, 13)]
    assert by_level.to_numpy() == pytest.approx(expected, rel=1e-12)
    assert _tiny().score(TINY_TRUE, TINY_PRED).overall == pytest.approx(sum(expected) / 12, rel=1e-12)


def test_one_shot_function_uses_the_28_day_window():
    sales = np.tile(TINY_SALES, 8)  # 32 days
    prices = np.tile(np.nan_to_num(TINY_PRICES), 8)
    expected = WRMSSE(TINY_SERIES, sales, prices).score(TINY_TRUE, TINY_PRED).overall
    assert wrmsse(TINY_SERIES, sales, prices, TINY_TRUE, TINY_PRED) == expected
    weights = WRMSSE(TINY_SERIES, sales, prices).weights
    last_28 = (sales[:, 4:] * prices[:, 4:]).sum()
    assert _row(weights, "Level1", "Total").dollar_sales == pytest.approx(last_28)


def test_score_by_series_gives_every_aggregated_series_its_rmsse():
    table = _tiny().score_by_series(TINY_TRUE, TINY_PRED)
    assert len(table) == 1 + 1 + 2 + 1 + 1 + 1 + 1 + 2 + 2 + 2 + 2 + 4
    assert _row(table, "Level12", "FOODS_1_002", "CA_2").rmsse == pytest.approx(math.sqrt(2))
    assert table.groupby("level").weight.sum().to_numpy() == pytest.approx(np.ones(12))


def test_categorical_series_table_with_any_index_scores_the_same():
    series = TINY_SERIES.astype("category").set_axis([10, 11, 12, 13])
    evaluator = WRMSSE(series, TINY_SALES, TINY_PRICES, weight_days=3)
    assert evaluator.score(TINY_TRUE, TINY_PRED).overall == _tiny().score(TINY_TRUE, TINY_PRED).overall
    assert evaluator.weights.equals(_tiny().weights)


def test_perfect_forecast_scores_zero():
    assert _tiny().score(TINY_TRUE, TINY_TRUE).overall == 0.0


def test_series_that_never_sold_has_no_say():
    sales = np.vstack([TINY_SALES[:3], np.zeros(4)])
    evaluator = WRMSSE(TINY_SERIES, sales, TINY_PRICES, weight_days=3)
    assert _row(evaluator.weights, "Level12", "FOODS_1_002", "CA_2").scale == 0
    pred = TINY_TRUE.copy()
    pred[3] += 5  # a large error on the never-sold series alone: 0 x inf must not make NaN
    by_level = evaluator.score_by_level(TINY_TRUE, pred)
    assert by_level["Level12"] == 0.0
    assert np.isfinite(by_level).all() and by_level["Level1"] > 0  # the sums it enters still count


def test_weighted_series_with_flat_history_is_left_out_with_its_level_renormalised():
    sales = np.vstack([TINY_SALES[:3], [0, 2, 2, 2]])  # sells, but never changes: scale 0
    evaluator = WRMSSE(TINY_SERIES, sales, TINY_PRICES, weight_days=3)
    flat = _row(evaluator.weights, "Level12", "FOODS_1_002", "CA_2")
    assert flat.scale == 0 and flat.dollar_sales == 8 and flat.scaled_weight == 0
    score = evaluator.score(TINY_TRUE, TINY_PRED)
    # A1 4, B1 16, A2 7 dollars remain at Level12: weights over 27, not 35
    assert score.levels["Level12"] == pytest.approx(4 / 27 * math.sqrt(0.5) + 7 / 27 * math.sqrt(1 / 4), rel=1e-12)
    assert np.isfinite(score.levels).all() and math.isfinite(score.overall)
    assert score.excluded.to_dict() == {level: int(level == "Level12") for level in LEVELS}
    assert (score.excluded_total, score.note) == (1, "1 series without a scale left out")
    assert score.by_key()["12"] == (score.levels["Level12"], 1) and score.by_key()["all"] == (score.overall, 1)
    assert evaluator.score(TINY_TRUE, TINY_TRUE).overall == 0.0
    assert evaluator.weights.groupby("level").scaled_weight.sum().to_numpy() == pytest.approx(np.ones(12))


@pytest.mark.parametrize("sales, levels", [
    (np.ones((4, 4)), "Level1, Level2, Level3"),  # nothing ever changes
    (np.array([[0, 2, 2, 2], [0, 0, 1, 1], [3, 3, 3, 3], [0, 0, 0, 1]]), "Level12"),  # only the sums change
])
def test_a_level_with_no_scalable_weighted_series_is_refused(sales, levels):
    with pytest.raises(DataError, match=f"undefined: no node of {levels}"):
        WRMSSE(TINY_SERIES, sales, np.ones((4, 4)), weight_days=3)


@pytest.mark.parametrize("change, words", [
    (dict(series=TINY_SERIES.drop(columns="dept_id")), ["dept_id"]),
    (dict(series=TINY_SERIES.iloc[:3]), ["train_sales", "shape"]),
    (dict(train_prices=TINY_PRICES[:, :3]), ["train_prices", "shape"]),
    (dict(train_sales=np.where(TINY_SALES == 2, np.nan, TINY_SALES)), ["NaN"]),
    (dict(train_sales=TINY_SALES[:, :2], train_prices=TINY_PRICES[:, :2]), ["at least 3"]),
    (dict(train_prices=np.full(TINY_PRICES.shape, np.nan)), ["no dollar sales"]),
])
def test_evaluator_refuses_inconsistent_history(change, words):
    arguments = dict(series=TINY_SERIES, train_sales=TINY_SALES, train_prices=TINY_PRICES) | change
    with pytest.raises(DataError) as caught:
        WRMSSE(**arguments, weight_days=3)
    for word in words:
        assert word in str(caught.value)


def test_evaluator_refuses_nonpositive_weight_window():
    with pytest.raises(ParameterError, match="weight_days"):
        WRMSSE(TINY_SERIES, TINY_SALES, TINY_PRICES, weight_days=0)


@pytest.mark.parametrize("y_true, y_pred, words", [
    (TINY_TRUE[:3], TINY_PRED[:3], ["y_true", "(4, horizon)"]),
    (TINY_TRUE, TINY_PRED[:, :1], ["must match"]),
    (TINY_TRUE, np.where(TINY_PRED == 3, np.nan, TINY_PRED), ["y_pred", "NaN"]),
])
def test_score_refuses_forecasts_of_the_wrong_shape(y_true, y_pred, words):
    with pytest.raises(DataError) as caught:
        _tiny().score(y_true, y_pred)
    for word in words:
        assert word in str(caught.value)


# --- the real M5 slice: 290 series, train to d_1913, horizon d_1914..d_1941 ---------------------

@functools.lru_cache(maxsize=1)
def _load_slice(folder: str):
    """(series, sales, daily prices) of the slice; weekly prices spread to days via wm_yr_wk."""
    path = Path(folder)
    wide = pd.read_csv(path / "sales_train_evaluation.csv.gz")
    calendar = pd.read_csv(path / "calendar.csv")
    weekly = pd.read_csv(path / "sell_prices.csv.gz")
    days = [c for c in wide.columns if c.startswith("d_")]
    series = wide[["id", "item_id", "dept_id", "cat_id", "store_id", "state_id"]]
    week_of_day = calendar.set_index("d").loc[days, "wm_yr_wk"].to_numpy()
    by_week = weekly.pivot_table(index=["store_id", "item_id"], columns="wm_yr_wk", values="sell_price")
    by_week = by_week.reindex(pd.MultiIndex.from_frame(series[["store_id", "item_id"]]))
    prices = by_week.reindex(columns=week_of_day).to_numpy()
    return series, wide[days].to_numpy(), prices


@pytest.fixture
def m5_slice(m5_dir):
    series, sales, prices = _load_slice(str(m5_dir))
    evaluator = WRMSSE(series, sales[:, :1913], prices[:, :1913])
    return evaluator, sales[:, :1913], sales[:, 1913:1941], Path(m5_dir)


@pytest.mark.real_data
def test_perfect_forecast_scores_zero_on_the_slice(m5_slice):
    evaluator, _, actual, _ = m5_slice
    assert evaluator.score(actual, actual).overall == 0.0


@pytest.mark.real_data
def test_naive_scores_worse_than_seasonal_naive_on_the_slice(m5_slice):
    evaluator, train, actual, _ = m5_slice
    naive = np.repeat(train[:, -1:], 28, axis=1)
    seasonal = np.tile(train[:, -7:], 4)
    naive_score, seasonal_score = evaluator.score(actual, naive).overall, evaluator.score(actual, seasonal).overall
    assert 0 < seasonal_score < naive_score
    assert naive_score == pytest.approx(1.0652, abs=1e-4)  # measured; guards against silent drift
    assert seasonal_score == pytest.approx(0.8543, abs=1e-4)


@pytest.mark.real_data
def test_level12_dollar_sales_and_weight_ratios_match_the_official_ones(m5_slice):
    evaluator, _, _, folder = m5_slice
    keys = ["level", "agg_level_1", "agg_level_2"]
    dollars = pd.read_csv(folder / "weights_validation_with_dollar_sales.csv.gz")
    dollars.columns = [*keys, "official_dollars", "precise_weight"]
    official = pd.read_csv(folder / "weights_validation.csv.gz")  # 3 significant digits
    official.columns = [*keys, "official_weight"]
    ours = evaluator.weights[evaluator.weights.level == "Level12"]
    table = ours.merge(dollars, on=keys, how="left").merge(official, on=keys, how="left")
    assert len(table) == 290 and table.official_dollars.notna().all()
    assert table.dollar_sales.to_numpy() == pytest.approx(table.official_dollars.to_numpy(), abs=1e-6)
    # Our weights are shares of the slice, the official ones shares of all 30,490 series: equal
    # ratios means ours, rescaled by slice dollars / all dollars, are the official weights.
    all_dollars = dollars.loc[dollars.level == "Level1", "official_dollars"].item()
    rescaled = (table.weight * ours.dollar_sales.sum() / all_dollars).to_numpy()
    assert rescaled == pytest.approx(table.precise_weight.to_numpy(), rel=1e-6, abs=1e-12)
    assert rescaled == pytest.approx(table.official_weight.to_numpy(), rel=5e-3, abs=1e-12)
    assert (table.weight == 0).sum() == (table.official_weight == 0).sum() > 0


@pytest.mark.real_data
def test_item_level_dollar_sales_match_official_for_items_in_all_ten_stores(m5_slice):
    evaluator, _, _, folder = m5_slice
    keys = ["level", "agg_level_1", "agg_level_2"]
    dollars = pd.read_csv(folder / "weights_validation_with_dollar_sales.csv.gz")
    dollars.columns = [*keys, "official_dollars", "unused"]
    level12 = evaluator.weights[evaluator.weights.level == "Level12"]
    full_items = level12.groupby("agg_level_1").size().loc[lambda n: n == 10].index
    weights = evaluator.weights
    ours = weights[(weights.level == "Level10") & weights.agg_level_1.isin(full_items)]
    table = ours.merge(dollars, on=keys, how="left")
    assert len(table) == 28
    assert table.dollar_sales.to_numpy() == pytest.approx(table.official_dollars.to_numpy(), abs=1e-6)


@pytest.mark.real_data
def test_every_level_of_the_slice_is_present_and_scaled(m5_slice):
    evaluator, _, _, _ = m5_slice
    counts = evaluator.weights.groupby("level").size()
    assert counts[list(LEVELS)].tolist() == [1, 3, 10, 3, 7, 9, 21, 30, 70, 38, 94, 290]
    assert (evaluator.weights.scale > 0).all()
