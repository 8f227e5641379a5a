"""The simulated next day keeps the structure of its history: yearly pattern, price response, intermittency."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from m5ops.data.simulate import LEVEL_DAYS, LOOKBACK_DAYS, YEAR_DAYS, simulate_next_day
from m5ops.data.synthetic import generate


@pytest.fixture(scope="module")
def frame():
    """Calendar and series of a synthetic data set (its sales are replaced by each test's own)."""
    data = generate(2, n_days=LOOKBACK_DAYS + 200)
    calendar = data.calendar.set_index(data.calendar["day"].astype(int), drop=False)
    return data, calendar


def _history(frame, days: int, end_offset: int = 0):
    """The calendar of the ``days`` days up to the data's last day - end_offset, and the day after."""
    data, calendar = frame
    last = data.last_day - end_offset
    return calendar.loc[last - days + 1:last], calendar.loc[last + 1]


def test_the_yearly_pattern_of_last_year_carries_into_the_simulated_day(frame):
    data, _ = frame
    n, days = data.n_series, LOOKBACK_DAYS
    history, today = _history(frame, days)
    t = np.arange(days + 1)
    season = 1 + 0.5 * np.sin(2 * np.pi * (t - days + 40) / YEAR_DAYS)  # rising steeply through the level window
    base = np.random.default_rng(1).uniform(2, 20, size=n)
    rng = np.random.default_rng(2)
    sales = rng.poisson(base[:, None] * season[None, :days]).astype(np.float64)
    prices = np.full((n, days), 3.0)
    day = simulate_next_day(sales, prices, history, today, data.series, seed=0)
    true_total = (base * season[days]).sum()
    recent_average = sales[:, -LEVEL_DAYS:].sum(axis=0).mean()
    assert abs(recent_average / true_total - 1) > 0.2  # a recent average misses where the year is going
    assert day.factors["mean"].sum() == pytest.approx(true_total, rel=0.08)
    assert (day.factors["yearly"] > 1.15).mean() > 0.9

    short = simulate_next_day(sales[:, -364:], prices[:, -364:], history.iloc[-364:], today, data.series, seed=0)
    assert (short.factors["yearly"] == 1.0).all()  # less than a year and a level window: no yearly pattern


def test_the_price_response_follows_the_elasticity_seen_in_the_history(frame):
    data, _ = frame
    n, days = data.n_series, LOOKBACK_DAYS
    history, today = next((h, d) for h, d in (_history(frame, days, offset) for offset in range(7))
                          if int(d["wday"]) != 1)  # mid-week: today's price is yesterday's
    rng = np.random.default_rng(3)
    weeks = (days + 13) // 7
    weekly = 4.0 * np.exp(rng.choice([0.0, 0.0, -0.2, 0.15], size=(n, weeks)))
    first_saturday = int(np.flatnonzero(history["wday"].to_numpy() == 1)[0])
    week_of_day = (np.arange(days) - first_saturday) // 7 + 1
    prices = weekly[:, week_of_day]
    prices[:, -7:] = 3.0  # the last week on sale below every series' usual price
    base = rng.uniform(20, 60, size=n)
    sales = rng.poisson(base[:, None] * (prices / 4.0) ** -2.5).astype(np.float64)
    day = simulate_next_day(sales, prices, history, today, data.series, seed=0)
    reference = prices[:, -LEVEL_DAYS:].mean(axis=1)
    implied = -np.log(day.factors["price"].to_numpy()) / np.log(prices[:, -1] / reference)
    assert np.median(implied) == pytest.approx(2.5, abs=0.5)
    assert (day.factors["price"] > 1.1).all()


def test_each_series_keeps_its_own_zero_share_and_dispersion(frame):
    data, _ = frame
    n, days = data.n_series, LOOKBACK_DAYS
    history, today = _history(frame, days)
    rng = np.random.default_rng(4)
    zero_rate = np.linspace(0.0, 0.85, n)  # from always selling to selling on one day in seven
    selling = rng.random((n, days)) >= zero_rate[:, None]
    sales = np.where(selling, 1 + rng.poisson(4.0, size=(n, days)), 0).astype(np.float64)
    prices = np.full((n, days), 2.0)
    draws = np.stack([simulate_next_day(sales, prices, history, today, data.series, seed=s).sales
                      for s in range(300)], axis=1)
    own = (sales[:, -LEVEL_DAYS:] == 0).mean(axis=1)  # the level window: the zero share it fits
    np.testing.assert_allclose((draws == 0).mean(axis=1), own, atol=0.1)
    dispersion = draws.var(axis=1) / np.maximum(draws.mean(axis=1), 1e-9)
    history_dispersion = sales.var(axis=1) / sales.mean(axis=1)
    assert np.corrcoef(dispersion, history_dispersion)[0, 1] > 0.8  # the intermittent ones stay lumpy
    assert draws.mean() == pytest.approx(sales.mean(), rel=0.1)


def test_items_not_on_sale_sell_nothing_and_pre_launch_zeros_do_not_lower_the_level(frame):
    data, _ = frame
    n, days = data.n_series, LOOKBACK_DAYS
    history, today = _history(frame, days)
    rng = np.random.default_rng(5)
    sales = rng.poisson(10.0, size=(n, days)).astype(np.float64)
    prices = np.full((n, days), 2.0)
    launched = np.arange(n) % 3 == 0
    prices[launched, :-40] = np.nan  # on sale for the last 40 days only
    sales[launched, :-40] = 0
    prices[1, :] = np.nan  # never on sale
    sales[1, :] = 0
    day = simulate_next_day(sales, prices, history, today, data.series, seed=0)
    assert day.sales[1] == 0 and np.isnan(day.prices[1])
    level = day.factors["level"].to_numpy()
    assert level[launched].mean() == pytest.approx(level[~launched & (np.arange(n) != 1)].mean(), rel=0.1)


def test_the_factors_explain_the_mean(frame):
    data, calendar = frame
    history, today = _history(frame, LOOKBACK_DAYS)
    day = simulate_next_day(data.sales[:, -LOOKBACK_DAYS:], data.prices[:, -LOOKBACK_DAYS:], history, today,
                            data.series, seed=0)
    f = day.factors
    product = f["level"] * f["weekday"] * f["yearly"] * f["snap"] * f["event"] * f["price"] * f["recent"]
    np.testing.assert_allclose(f["mean"], np.where(np.isnan(day.prices), 0.0, product))
    assert isinstance(f, pd.DataFrame) and len(f) == data.n_series
