"""Simulating the next day past the end of the real data, every value following from the data.

A pure function of the recent history (at most ``LOOKBACK_DAYS``, so the cost does not grow
with the store), the calendar and the seed:

- price: carried over, except on the first day of a Walmart week (Saturday), when a share of
  items (the share seen changing week to week in the history) take a price drawn from their
  own recent prices;
- sales: a negative-binomial draw around
  ``level x weekday factor x SNAP factor x event factor x price factor``, where the level is
  the series' mean over the last 28 days with those factors divided out, the weekday and SNAP
  factors are measured per store and category in the history, the event factor is what the
  same event did to the store's sales when it last happened, and the price factor applies a
  constant elasticity to the price against its 28-day mean. The dispersion is the series' own
  (variance over mean of its last 28 days).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from m5ops.data.features import snap_of_day, state_codes

LOOKBACK_DAYS = 364
LEVEL_DAYS = 28
PRICE_ELASTICITY = 1.5  # a typical own-price elasticity for grocery; M5 has no cost data to fit it
_SHRINK = 50.0  # pseudo-units pulling a group's factor towards 1 when the group sells little


@dataclass
class SimulatedDay:
    """One simulated day and why its values are what they are."""

    sales: np.ndarray
    prices: np.ndarray
    factors: pd.DataFrame  # per series: level, weekday, snap, event, price, mean


def simulate_next_day(
    sales: np.ndarray,
    prices: np.ndarray,
    history_calendar: pd.DataFrame,
    day_calendar: pd.Series,
    series: pd.DataFrame,
    seed: int,
) -> SimulatedDay:
    """Values of the day after ``sales``'s last column (history is at most ``LOOKBACK_DAYS``)."""
    day = int(day_calendar["day"])
    rng = np.random.default_rng([int(seed), day])
    group = (series["store_id"].astype(str) + "|" + series["cat_id"].astype(str)).to_numpy()
    codes, states = state_codes(series["state_id"])
    snap_hist = _snap_matrix(history_calendar, codes, states)
    snap_today = snap_of_day(day_calendar, codes, states)
    wday_hist = history_calendar["wday"].to_numpy()

    wday_factor = _weekday_factors(sales, wday_hist, group)
    snap_factor = _snap_factors(sales, snap_hist, group)
    today_wday = wday_factor[:, int(day_calendar["wday"]) - 1]
    today_snap = np.where(snap_today == 1, snap_factor, 1.0)
    event = _event_factor(sales, history_calendar, day_calendar, series)

    new_prices = _next_prices(prices, day_calendar, rng)
    recent = slice(-LEVEL_DAYS, None)
    recent_factor = (wday_factor[np.arange(len(series))[:, None], wday_hist[recent][None, :] - 1]
                     * np.where(snap_hist[:, recent] == 1, snap_factor[:, None], 1.0))
    level = sales[:, recent].mean(axis=1) / np.maximum(recent_factor.mean(axis=1), 1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_price = np.nanmean(prices[:, recent], axis=1)
        price_factor = np.nan_to_num((new_prices / ref_price) ** -PRICE_ELASTICITY, nan=1.0)
    mean = level * today_wday * today_snap * event * price_factor
    mean = np.where(np.isnan(new_prices), 0.0, mean)  # not on sale yet: nothing sells
    units = _negative_binomial(mean, sales[:, recent], rng)
    factors = pd.DataFrame({"level": level, "weekday": today_wday, "snap": today_snap,
                            "event": event, "price": price_factor, "mean": mean})
    return SimulatedDay(units, new_prices.astype(np.float32), factors)


def _snap_matrix(calendar: pd.DataFrame, codes: np.ndarray, states: list[str]) -> np.ndarray:
    """SNAP flag per series and history day, by the series' state (``states[codes]``)."""
    no_snap = pd.Series(0, index=calendar.index)
    flags = np.stack([calendar.get(f"snap_{s}", no_snap).to_numpy() for s in states])
    return flags[codes]


def _group_ratio(numerator: np.ndarray, denominator: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per-series ratio of group sums, shrunk towards 1 for groups with few sales."""
    codes, _ = pd.factorize(group)
    num = np.bincount(codes, weights=numerator)
    den = np.bincount(codes, weights=denominator)
    return ((num + _SHRINK) / (den + _SHRINK))[codes]


def _weekday_factors(sales: np.ndarray, wday: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(n_series, 7) multipliers of each weekday against the average day, per store x category."""
    daily_mean = sales.mean(axis=1)
    factors = np.empty((sales.shape[0], 7))
    for w in range(1, 8):
        on_day = wday == w
        factors[:, w - 1] = _group_ratio(sales[:, on_day].mean(axis=1), daily_mean, group)
    return factors


def _snap_factors(sales: np.ndarray, snap: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Multiplier of a SNAP day against a non-SNAP day, per store x category."""
    on = np.where(snap == 1, sales, 0).sum(axis=1) / np.maximum((snap == 1).sum(axis=1), 1)
    off = np.where(snap == 0, sales, 0).sum(axis=1) / np.maximum((snap == 0).sum(axis=1), 1)
    return _group_ratio(on, off, group)


def _event_factor(sales: np.ndarray, calendar: pd.DataFrame, today: pd.Series, series: pd.DataFrame) -> np.ndarray:
    """What today's event did last time to each store's sales (1 where there is no event or no past)."""
    name = today.get("event_name_1")
    past = np.flatnonzero(calendar["event_name_1"].to_numpy() == name) if isinstance(name, str) and name else []
    if len(past) == 0:
        return np.ones(sales.shape[0])
    j = int(past[-1])
    neighbours = [k for k in range(j - 14, j + 15, 7) if k != j and 0 <= k < sales.shape[1]]
    stores = series["store_id"].astype(str).to_numpy()
    return _group_ratio(sales[:, j], sales[:, neighbours].mean(axis=1), stores)


def _next_prices(prices: np.ndarray, today: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """Yesterday's prices, re-drawn from each item's own history for some items on a new week."""
    current = prices[:, -1].astype(np.float64)
    if int(today["wday"]) != 1:
        return current
    weekly = prices[:, ::-7][:, ::-1]  # one price per past week, oldest first
    changed_share = np.nanmean(np.abs(np.diff(weekly, axis=1)) > 1e-6) if weekly.shape[1] > 1 else 0.0
    change = (rng.random(len(current)) < np.nan_to_num(changed_share)) & ~np.isnan(current)
    pick = rng.integers(0, weekly.shape[1], size=len(current))
    drawn = weekly[np.arange(len(current)), pick]
    return np.where(change & ~np.isnan(drawn), drawn, current)


def _negative_binomial(mean: np.ndarray, recent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Counts around ``mean`` with each series' own over-dispersion (Poisson where there is none)."""
    m, v = recent.mean(axis=1), recent.var(axis=1)
    dispersion = np.where(v > m + 1e-9, m * m / np.maximum(v - m, 1e-9), np.inf)
    poisson = rng.poisson(np.maximum(mean, 0))
    shape = np.where(np.isfinite(dispersion), dispersion, 1.0)
    gamma = rng.gamma(np.maximum(shape, 1e-3), np.maximum(mean, 0) / np.maximum(shape, 1e-3))
    mixed = rng.poisson(gamma)
    return np.where(np.isfinite(dispersion), mixed, poisson).astype(np.int64)
