"""Model kinds: fit, predict, save/load round trips, baseline arithmetic and the kind registry."""
import json

import numpy as np
import pandas as pd
import pytest

from m5ops.data.schema import day_date
from m5ops.errors import ArtifactError, DataError, NotFittedError, ParameterError
from m5ops.models import (
    CATEGORICALS, FEATURES, ForecastInput, ForecastModel, describe_kinds, get_kind, kinds,
)
from m5ops.models.base import MODEL_FILE, PREDICTION_ROWS_PER_THREAD, prediction_threads

# Small settings so a fit takes well under a second on a shared 2-core machine.
SMALL = {
    "lightgbm": {"num_boost_round": 60, "num_leaves": 15, "min_data_in_leaf": 20},
    "hist_gb": {"max_iter": 60, "max_leaf_nodes": 15, "min_samples_leaf": 20},
    "seasonal_naive": {},
    "moving_average": {},
}
WEEKLY = np.array([3.0, 2.5, 0.4, 0.4, 0.6, 1.0, 2.0])  # by wday: Saturday .. Friday
START = 173  # forecast window 173..200 of a 200-day panel
NO_ROWS = pd.DataFrame({"series": [], "day": [], "sales": []})  # baselines learn nothing


def make_sales(n_series=20, n_days=200, weekly=None, seed=0):
    """A Poisson panel (n_series, n_days), days 1..n_days; optional weekly profile by wday."""
    rng = np.random.default_rng(seed)
    wday = (np.arange(n_days) % 7)  # day 1 is a Saturday, wday 1
    profile = np.ones(7) if weekly is None else weekly
    level = rng.gamma(2.0, 1.5, size=(n_series, 1))
    return rng.poisson(level * profile[wday]).astype(np.int64)


def _shift(a, k):
    """a shifted k days later along axis 1, NaN where there is no history."""
    out = np.full(a.shape, np.nan)
    out[:, k:] = a[:, :-k]
    return out


def _rolling(a, w):
    """Rolling mean and std over w days ending at each day (NaN before w days exist)."""
    c1 = np.cumsum(np.pad(a, ((0, 0), (1, 0))), axis=1)
    c2 = np.cumsum(np.pad(a ** 2, ((0, 0), (1, 0))), axis=1)
    mean, sq = np.full(a.shape, np.nan), np.full(a.shape, np.nan)
    mean[:, w - 1:] = (c1[:, w:] - c1[:, :-w]) / w
    sq[:, w - 1:] = (c2[:, w:] - c2[:, :-w]) / w
    return mean, np.sqrt(np.maximum(sq - mean ** 2, 0))


def make_frame(sales, seed=0):
    """The feature frame contract for a panel whose column j is day j + 1."""
    rng = np.random.default_rng(seed)
    n, t = sales.shape
    s = sales.astype(np.float64)
    days = np.arange(1, t + 1)
    cols = {f"lag_{k}": _shift(s, k) for k in (28, 35, 42, 49, 56)}
    for w in (7, 28, 56):
        mean, std = _rolling(s, w)
        cols[f"rmean_{w}"] = _shift(mean, 28)
        if w in (7, 28):
            cols[f"rstd_{w}"] = _shift(std, 28)
    price = rng.uniform(1, 10, (n, 1)) * np.where(rng.random((n, t)) < 0.1, 0.8, 1.0)
    cols["sell_price"] = price
    cols["price_rel_max"] = price / np.maximum.accumulate(price, axis=1)
    cols["price_change_week"] = price / _shift(price, 7) - 1
    frame = pd.DataFrame({k: v.reshape(-1).astype(np.float32) for k, v in cols.items()})
    frame.insert(0, "series", np.repeat(np.arange(n), t).astype(np.int32))
    frame.insert(1, "day", np.tile(days, n).astype(np.int32))
    frame.insert(2, "sales", s.reshape(-1).astype(np.float32))
    dates = day_date(frame["day"].to_numpy())
    frame["wday"] = ((frame["day"] - 1) % 7 + 1).astype(np.int8)
    frame["month"] = dates.month.astype(np.int8)
    frame["mday"] = dates.day.astype(np.int8)
    frame["event"] = np.where(frame["day"] % 50 == 0, 2, 0).astype(np.int8)
    frame["snap"] = (dates.day <= 10).astype(np.int8)
    ids = pd.DataFrame({"item_id": [f"FOODS_1_{i:03d}" for i in range(n)], "dept_id": "FOODS_1",
                        "cat_id": "FOODS", "store_id": ["CA_1", "TX_1"] * (n // 2) + ["CA_1"] * (n % 2)})
    ids["state_id"] = ids["store_id"].str[:2]
    for col in CATEGORICALS:
        frame[col] = pd.Categorical(ids[col].to_numpy()[frame["series"]])
    return frame


def split(frame, sales, start=START, history=56):
    """Train rows before the window, and the ForecastInput for the window."""
    train = frame[frame["day"] < start]
    window = frame[frame["day"] >= start].reset_index(drop=True)
    return train, ForecastInput(window, sales[:, start - 1 - history:start - 1], start)


@pytest.fixture(scope="module")
def panel():
    sales = make_sales()
    return (sales, make_frame(sales))


@pytest.fixture(scope="module")
def fitted(panel):
    """One fitted model per kind, shared by the tests that only read them."""
    sales, frame = panel
    train, _ = split(frame, sales)
    return {kind: get_kind(kind)(**SMALL[kind]).fit(train) for kind in kinds()}


def test_frame_helper_matches_the_contract(panel):
    _, frame = panel
    assert set(FEATURES + CATEGORICALS) <= set(frame.columns)
    assert frame["lag_28"].isna().sum() == 20 * 28


def test_registry_holds_the_four_kinds():
    assert kinds() == ["hist_gb", "lightgbm", "moving_average", "seasonal_naive"]
    assert describe_kinds()["moving_average"]["params"][0]["name"] == "window"


def test_unknown_kind_is_refused_naming_it_and_the_kinds():
    with pytest.raises(ParameterError, match=r"'prophet'.*hist_gb, lightgbm, moving_average"):
        get_kind("prophet")


def test_bad_parameter_is_refused_at_construction():
    with pytest.raises(ParameterError, match="learning_rate"):
        get_kind("lightgbm")(learning_rate="fast")
    with pytest.raises(ParameterError, match="known: window"):
        get_kind("moving_average")(windw=7)


@pytest.mark.parametrize("kind", ["lightgbm", "hist_gb", "seasonal_naive", "moving_average"])
def test_each_kind_predicts_one_non_negative_value_per_row(kind, panel, fitted):
    sales, frame = panel
    _, inp = split(frame, sales)
    forecast = fitted[kind].predict(inp)
    assert forecast.shape == (len(inp.features),)
    assert np.isfinite(forecast).all() and (forecast >= 0).all()
    assert fitted[kind].training_summary.rows > 0


@pytest.mark.parametrize("kind", ["lightgbm", "hist_gb", "seasonal_naive", "moving_average"])
def test_save_load_round_trip_gives_identical_forecasts(kind, panel, fitted, tmp_path):
    sales, frame = panel
    _, inp = split(frame, sales)
    model = fitted[kind]
    model.save(tmp_path / kind)
    loaded = ForecastModel.load(tmp_path / kind)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    assert loaded.training_summary == model.training_summary
    np.testing.assert_array_equal(loaded.predict(inp), model.predict(inp))
    meta = json.loads((tmp_path / kind / MODEL_FILE).read_text())
    assert meta["kind"] == kind and meta["format_version"] == 1


def test_loading_through_another_kind_is_refused(fitted, tmp_path):
    fitted["moving_average"].save(tmp_path)
    with pytest.raises(ArtifactError, match="'moving_average' model, not 'lightgbm'"):
        get_kind("lightgbm").load(tmp_path)


@pytest.mark.parametrize("meta, message", [
    (None, "is not a saved model"),
    ("{not json", "unreadable"),
    ({"kind": "lightgbm"}, "lacks"),
    ({"format_version": 99, "kind": "lightgbm", "params": {}, "training_summary": {}}, "upgrade m5ops"),
])
def test_broken_model_directory_is_reported(tmp_path, meta, message):
    if meta is not None:
        (tmp_path / MODEL_FILE).write_text(meta if isinstance(meta, str) else json.dumps(meta))
    with pytest.raises(ArtifactError, match=message):
        ForecastModel.load(tmp_path)


def test_missing_artifact_is_reported(fitted, tmp_path):
    fitted["lightgbm"].save(tmp_path)
    (tmp_path / "model.txt").unlink()
    with pytest.raises(ArtifactError, match="incomplete"):
        ForecastModel.load(tmp_path)


def test_predict_before_fit_is_refused(panel):
    sales, frame = panel
    _, inp = split(frame, sales)
    with pytest.raises(NotFittedError, match="not fitted"):
        get_kind("lightgbm")().predict(inp)


def test_seasonal_naive_repeats_the_last_week_by_weekday():
    recent = np.vstack([np.arange(28), 100 + np.arange(28)])
    rows = pd.DataFrame({"series": [0, 0, 0, 1, 1], "day": [50, 56, 57, 51, 63]})
    model = get_kind("seasonal_naive")().fit(NO_ROWS)
    forecast = model.predict(ForecastInput(rows, recent, start_day=50))
    np.testing.assert_array_equal(forecast, [21, 27, 21, 122, 127])


def test_moving_average_is_the_mean_of_the_last_window_days():
    recent = np.vstack([np.arange(28), 100 + np.arange(28)])
    rows = pd.DataFrame({"series": [1, 0, 1], "day": [50, 60, 77]})
    model = get_kind("moving_average")(window=3).fit(NO_ROWS)
    np.testing.assert_array_equal(model.predict(ForecastInput(rows, recent, 50)), [126, 26, 126])
    default = get_kind("moving_average")().fit(NO_ROWS)
    np.testing.assert_allclose(default.predict(ForecastInput(rows, recent, 50)), [113.5, 13.5, 113.5])


def test_moving_average_refuses_a_window_longer_than_the_history():
    rows = pd.DataFrame({"series": [0], "day": [50]})
    model = get_kind("moving_average")(window=60).fit(NO_ROWS)
    with pytest.raises(DataError, match="window=60 needs 60 days"):
        model.predict(ForecastInput(rows, np.ones((1, 28)), 50))


@pytest.mark.parametrize("recent, rows, message", [
    (np.ones((1, 27)), {"series": [0], "day": [50]}, "k >= 28"),
    (np.full((1, 28), np.nan), {"series": [0], "day": [50]}, "NaN"),
    (np.ones((1, 28)), {"series": [1], "day": [50]}, "only 1 rows"),
    (np.ones((1, 28)), {"series": [0], "day": [49]}, "before the window start"),
])
def test_forecast_input_refuses_inconsistent_parts(recent, rows, message):
    with pytest.raises(DataError, match=message):
        ForecastInput(pd.DataFrame(rows), recent, 50)


def test_forecasts_are_clipped_at_zero():
    class Dipping(get_kind("moving_average")):
        def _predict(self, inp):
            return np.full(len(inp.features), -1.5)

    rows = pd.DataFrame({"series": [0, 0], "day": [50, 51]})
    model = Dipping().fit(NO_ROWS)
    np.testing.assert_array_equal(model.predict(ForecastInput(rows, np.ones((1, 28)), 50)), [0, 0])


def test_missing_feature_column_is_refused_by_name(panel):
    sales, frame = panel
    train, _ = split(frame, sales)
    with pytest.raises(DataError, match="rmean_28"):
        get_kind("hist_gb")(**SMALL["hist_gb"]).fit(train.drop(columns="rmean_28"))


@pytest.mark.parametrize("kind", ["lightgbm", "hist_gb"])
def test_train_days_keeps_only_the_last_days(kind, panel):
    sales, frame = panel
    train, _ = split(frame, sales)
    model = get_kind(kind)(**SMALL[kind], train_days=100).fit(train)
    summary = model.training_summary
    assert (summary.first_day, summary.last_day, summary.rows) == (73, 172, 20 * 100)
    assert summary.features == FEATURES + CATEGORICALS


@pytest.mark.parametrize("kind", ["lightgbm", "hist_gb"])
def test_ids_as_plain_strings_give_the_same_forecasts(kind, panel, fitted):
    sales, frame = panel
    _, inp = split(frame, sales)
    as_strings = inp.features.astype({col: str for col in CATEGORICALS})
    plain = ForecastInput(as_strings, inp.recent_sales, inp.start_day)
    np.testing.assert_allclose(fitted[kind].predict(plain), fitted[kind].predict(inp))


def test_hist_gb_keeps_ids_with_more_levels_than_bins_as_codes():
    sales = make_sales(n_series=300, n_days=120)
    train, inp = split(make_frame(sales), sales, start=100)
    model = get_kind("hist_gb")(max_iter=5, min_samples_leaf=20).fit(train)
    assert model.categorical_[len(FEATURES):] == [False, True, True, True, True]  # item_id: 300 levels
    assert np.isfinite(model.predict(inp)).all()


def test_hist_gb_fits_on_a_seeded_sample_of_max_rows_rows(panel):
    sales, frame = panel
    train, inp = split(frame, sales)
    capped = [get_kind("hist_gb")(**SMALL["hist_gb"], max_rows=1_000).fit(train) for _ in range(2)]
    full = get_kind("hist_gb")(**SMALL["hist_gb"], max_rows=len(train)).fit(train)
    assert len(train) > 1_000
    assert [m.fitted_rows_ for m in capped] == [1_000, 1_000]
    assert (full.fitted_rows_, capped[0].training_summary.rows) == (len(train), len(train))
    np.testing.assert_array_equal(capped[0].predict(inp), capped[1].predict(inp))  # the sample is seeded
    assert not np.allclose(capped[0].predict(inp), full.predict(inp))


@pytest.mark.parametrize("kind", ["lightgbm", "hist_gb"])
def test_a_feature_without_history_yet_does_not_stop_training(kind):
    sales = make_sales(n_days=100)
    train, inp = split(make_frame(sales), sales, start=80)
    assert train["rmean_56"].isna().all()  # needs 84 days
    forecast = get_kind(kind)(**SMALL[kind]).fit(train).predict(inp)
    assert np.isfinite(forecast).all()


def test_parameters_changed_after_construction_are_validated_at_fit(panel):
    sales, frame = panel
    train, _ = split(frame, sales)
    model = get_kind("lightgbm")(**SMALL["lightgbm"])
    model.learning_rate = "0.1"  # as a form might set it
    assert model.fit(train).learning_rate == 0.1
    model.num_leaves = 1
    with pytest.raises(ParameterError, match="num_leaves"):
        model.fit(train)


def test_lightgbm_fit_is_deterministic(panel, fitted):
    sales, frame = panel
    train, inp = split(frame, sales)
    again = get_kind("lightgbm")(**SMALL["lightgbm"]).fit(train)
    np.testing.assert_array_equal(again.predict(inp), fitted["lightgbm"].predict(inp))


def test_lightgbm_reports_gain_per_feature(fitted):
    importance = fitted["lightgbm"].feature_importance()
    assert sorted(importance.index) == sorted(FEATURES + CATEGORICALS)
    assert importance.is_monotonic_decreasing and importance.iloc[0] > 0
    assert fitted["moving_average"].feature_importance() is None


def test_lightgbm_beats_moving_average_on_weekly_seasonality():
    sales = make_sales(weekly=WEEKLY, seed=1)
    train, inp = split(make_frame(sales, seed=1), sales)
    actual = sales[inp.features["series"], inp.features["day"] - 1]
    lgbm = get_kind("lightgbm")(**SMALL["lightgbm"]).fit(train)
    average = get_kind("moving_average")().fit(train)
    mae_lgbm = np.abs(lgbm.predict(inp) - actual).mean()
    snaive = get_kind("seasonal_naive")().fit(train)
    mae_average = np.abs(average.predict(inp) - actual).mean()
    mae_snaive = np.abs(snaive.predict(inp) - actual).mean()
    assert mae_lgbm < 0.8 * mae_average and mae_lgbm < mae_snaive


def test_a_small_batch_predicts_on_one_thread_and_a_large_one_on_up_to_the_models_threads():
    assert prediction_threads(6_000, 2) == 1  # the embedded default's 210 series x 28 days
    assert prediction_threads(2 * PREDICTION_ROWS_PER_THREAD, 2) == 2
    assert prediction_threads(30_490 * 28, 4) == 4  # the full shape's 28 days
    assert prediction_threads(30_490 * 28, 1) == 1  # never above the model's own limit
    assert prediction_threads(0, 2) == 1
