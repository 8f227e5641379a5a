"""Simulating the next day past the end of the real data, every value following from the data.

A pure function of the recent history (at most ``LOOKBACK_DAYS``, so the cost does not grow
with the store), the calendar and the seed. Each series' expected sales are a multiplicative
model fitted on that history::

    mean = level x weekday x yearly x SNAP x event x price x recent

- **level**: the series' sales over the last ``LEVEL_DAYS`` days on sale, divided by what the
  other factors predicted for those days (event days left out): a deseasonalised level over
  twelve weeks, not a recent average. A recent average is what the moving-average model
  forecasts; a mean built on it makes the simulated days drift to whatever that model predicts
  (so that it wins), while the weekday, yearly, event and price factors are what a learned
  model picks up from the real data.
- **weekday** and **SNAP**: the series' own multipliers measured in the history (days on
  sale), pulled towards its store x category's where it sells little.
- **yearly**: how the store x category's sales went, a year earlier (364 days: the same
  weekday), from the level window to the same day, from two-week averages (each weekday twice,
  event days left out). It carries the yearly pattern and last year's trend over those weeks;
  with less than ``LOOKBACK_DAYS`` of history it is 1.
- **event**: what the same event did to the store x category's sales when it last happened,
  against the same weekday one and two weeks around it.
- **price**: ``(price / mean price of the level window) ** -elasticity``, the elasticity
  estimated per department from the week-to-week price changes of its items in the history
  (pulled towards ``PRICE_ELASTICITY`` where the history has few).
- **recent**: ``1 + phi x`` how far the last week ran above or below the fitted means, where
  ``phi`` (per store x category) is the share of a week's deviation the history shows carrying
  into the next week: real demand wanders, and noise does not carry over.

Prices are carried over, except on the first day of a Walmart week (Saturday), when a share of
items (the share seen changing week to week in the history) take a price drawn from their own
recent prices. Sales are drawn around the mean from a zero-inflated negative binomial with the
series' own dispersion (half the squared change of its sales from the same weekday a week
before, over the level window: the noise, without the weekday pattern or a wandering level) and
its own share of zero days there (zeros beyond what the negative binomial gives are inflated).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from m5ops.data.features import snap_of_day, state_codes

LEVEL_DAYS = 84
YEAR_DAYS = 364  # a year back on the same weekday
SMOOTH_DAYS = 14  # the yearly profile averages two weeks around the day: each weekday twice
# the level window a year back, and the two weeks around its days
LOOKBACK_DAYS = YEAR_DAYS + LEVEL_DAYS + SMOOTH_DAYS // 2
PRICE_ELASTICITY = 1.5  # a typical own-price elasticity for grocery: the prior of each department's
ELASTICITY_PRIOR = 0.2  # its weight: as many squared log price changes (about 20 changes of 10%)
ELASTICITY_RANGE = (0.0, 4.0)
_SHRINK = 50.0  # pseudo-units pulling a group's factor towards 1 when the group sells little
_YEAR_SHRINK = 2.0  # the same for the yearly profile, in units per day of a group's two-week average
_MAX_ZERO_INFLATION = 0.95
_MAX_PERSISTENCE = 0.9
_WEEKDAY_SHRINK = 30.0  # units of a series' sales on a weekday before its own pattern outweighs its group's
_MIN_SHAPE = 0.05  # the negative binomial's shape: below it a handful of days make the whole tail


@dataclass
class SimulatedDay:
    """One simulated day and why its values are what they are."""

    sales: np.ndarray
    prices: np.ndarray
    factors: pd.DataFrame  # per series: level, weekday, yearly, snap, event, price, recent, mean, zero_inflation, shape


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
    sales = np.asarray(sales, dtype=np.float64)
    prices = np.asarray(prices, dtype=np.float64)
    n, n_days = sales.shape
    group = _codes(series["store_id"].astype(str) + "|" + series["cat_id"].astype(str))
    codes, states = state_codes(series["state_id"])
    snap_flags = _snap_flags(history_calendar, states)
    snap_today = snap_of_day(day_calendar, codes, states)
    wday_hist = history_calendar["wday"].to_numpy().astype(np.int64)
    event_hist = _event_days(history_calendar)
    window = slice(n_days - min(LEVEL_DAYS, n_days), n_days)
    rows = np.arange(n)[:, None]

    on_sale = (~np.isnan(prices)).astype(np.float64)
    wday_factor = _weekday_factors(sales, on_sale, wday_hist, group)
    snap_factor = _snap_factors(sales, on_sale, snap_flags, codes, group)
    yearly_hist, yearly_today = _yearly_factors(sales, event_hist, group, window)
    elasticity = _elasticities(sales, prices, wday_hist, _codes(series["dept_id"].astype(str)))
    new_prices = _next_prices(prices, day_calendar, rng)
    priced = ~np.isnan(prices[:, window])
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_price = np.where(priced, prices[:, window], 0).sum(axis=1) / priced.sum(axis=1)  # NaN: never priced
        price_hist = np.nan_to_num((prices[:, window] / ref_price[:, None]) ** -elasticity[:, None], nan=1.0)
        price_today = np.nan_to_num((new_prices / ref_price) ** -elasticity, nan=1.0)

    expected = (wday_factor[rows, wday_hist[window][None, :] - 1] * yearly_hist
                * np.where(snap_flags[:, window][codes] == 1, snap_factor[:, None], 1.0) * price_hist)
    usable = priced & ~event_hist[window][None, :]
    level = (np.where(usable, sales[:, window], 0).sum(axis=1)
             / np.maximum(np.where(usable, expected, 0).sum(axis=1), 1e-9))
    today_wday = wday_factor[:, int(day_calendar["wday"]) - 1]
    today_snap = np.where(snap_today == 1, snap_factor, 1.0)
    event = _event_factor(sales, history_calendar, day_calendar, group)
    fitted = level[:, None] * expected
    recent, persistence = _persistence(sales[:, window], fitted, usable, group)
    mean = level * today_wday * yearly_today * today_snap * event * price_today * recent
    mean = np.where(np.isnan(new_prices), 0.0, mean)  # not on sale: nothing sells
    inflation, shape = _intermittency(sales[:, window], fitted * persistence, usable, _week_before(sales, prices, window))
    units = _zero_inflated_negative_binomial(mean, inflation, shape, rng)
    factors = pd.DataFrame({"level": level, "weekday": today_wday, "yearly": yearly_today, "snap": today_snap,
                            "event": event, "price": price_today, "recent": recent, "mean": mean,
                            "zero_inflation": inflation, "shape": shape})
    return SimulatedDay(units, new_prices.astype(np.float32), factors)


def _codes(labels: pd.Series) -> np.ndarray:
    """Integer codes 0..k-1 of a label per series."""
    return pd.factorize(labels.to_numpy())[0]


def _snap_flags(calendar: pd.DataFrame, states: list[str]) -> np.ndarray:
    """SNAP flag per state (``states``) and history day."""
    no_snap = pd.Series(0, index=calendar.index)
    return np.stack([calendar.get(f"snap_{s}", no_snap).to_numpy() for s in states]).astype(np.int8)


def _event_days(calendar: pd.DataFrame) -> np.ndarray:
    """Whether each history day has an event (its sales say little about an ordinary day)."""
    names = calendar["event_name_1"] if "event_name_1" in calendar else pd.Series(None, index=calendar.index)
    return names.fillna("").astype(str).str.len().to_numpy() > 0


def _group_sums(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(n_groups, n_days) sums of the series' rows per group (codes 0..k-1, each present)."""
    order = np.argsort(group, kind="stable")
    ordered = group[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    return np.add.reduceat(values[order], starts, axis=0)


def _by_columns(values: np.ndarray, indicator: np.ndarray) -> np.ndarray:
    """``values @ indicator`` for a thin indicator (days x a few): numpy's own loop, not BLAS,
    whose threads cost more than the product on a busy machine (and a day's cost must stay flat)."""
    return np.einsum("ij,jk->ik", values, indicator)


def _group_ratio(numerator: np.ndarray, denominator: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per-series ratio of group sums, shrunk towards 1 for groups with few sales."""
    num = np.bincount(group, weights=numerator)
    den = np.bincount(group, weights=denominator)
    return ((num + _SHRINK) / (den + _SHRINK))[group]


def _weekday_factors(sales: np.ndarray, on_sale: np.ndarray, wday: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(n_series, 7) multipliers of each weekday against the average day: the series' own, shrunk.

    A series' own weekday pattern is what a model learns of it (and what seasonal naive
    repeats); where it sells little, its store x category's pattern stands in for it
    (``_WEEKDAY_SHRINK`` pseudo-units of the group pattern). Only days on sale count.
    """
    days = np.maximum(on_sale.sum(axis=1), 1.0)
    daily_mean = sales.sum(axis=1) / days
    count = _weekday_sums(on_sale, wday)  # (n, 7) days on sale per weekday
    totals = _weekday_sums(sales, wday)
    factors = np.ones((sales.shape[0], 7))
    for w in range(7):
        group_factor = _group_ratio(totals[:, w] / np.maximum(count[:, w], 1), daily_mean, group)
        factors[:, w] = ((totals[:, w] + _WEEKDAY_SHRINK * group_factor)
                         / (count[:, w] * daily_mean + _WEEKDAY_SHRINK))
    return factors


def _weekday_sums(values: np.ndarray, wday: np.ndarray) -> np.ndarray:
    """(n_series, 7) sums of each row by weekday (column ``wday - 1``), by whole weeks: one pass."""
    n, length = values.shape
    weeks = length // 7
    out = np.zeros((n, 7))
    if weeks:  # consecutive days: the first seven are each weekday once, and so is every week after
        out[:, wday[:7] - 1] += values[:, :7 * weeks].reshape(n, weeks, 7).sum(axis=1)
    for j in range(7 * weeks, length):
        out[:, wday[j] - 1] += values[:, j]
    return out


def _snap_factors(sales: np.ndarray, on_sale: np.ndarray, flags: np.ndarray, codes: np.ndarray,
                  group: np.ndarray) -> np.ndarray:
    """Multiplier of a SNAP day against a non-SNAP day, per series shrunk to its store x category's.

    ``flags``: per state and day; only days on sale count.
    """
    rows, state_days = np.arange(len(codes)), flags.T.astype(np.float64)
    on_days = _by_columns(on_sale, state_days)[rows, codes]
    on = _by_columns(sales, state_days)[rows, codes]  # each series' own state's days
    off = sales.sum(axis=1) - on
    on_mean, off_mean = on / np.maximum(on_days, 1), off / np.maximum(on_sale.sum(axis=1) - on_days, 1)
    group_factor = _group_ratio(on_mean, off_mean, group)
    # the series' own uplift where it sells enough on SNAP days, its group's where it does not
    return (on + _WEEKDAY_SHRINK * group_factor) / (on_days * off_mean + _WEEKDAY_SHRINK)


def _yearly_factors(sales: np.ndarray, event: np.ndarray, group: np.ndarray,
                    window: slice) -> tuple[np.ndarray, np.ndarray]:
    """Per series, the yearly factor of each level-window day (n, L) and of today (n,), per store x category.

    The factor of day s is the group's two-week average around s - 364 against its mean over the
    level window's days a year back, so the level window averages about 1 and today's factor
    says how sales moved from those weeks to this day last year.
    """
    n, n_days = sales.shape
    length = window.stop - window.start
    half = SMOOTH_DAYS // 2
    if window.start - YEAR_DAYS - half < 0:  # less than a year and a level window: no yearly pattern
        return np.ones((n, length)), np.ones(n)
    ordinary = (~event).astype(np.float64)
    totals = _group_sums(sales, group) * ordinary[None, :]  # event days left out, after summing: no (n, days) copy
    cum = np.concatenate([np.zeros((totals.shape[0], 1)), np.cumsum(totals, axis=1)], axis=1)
    count = np.concatenate([[0.0], np.cumsum(ordinary)])
    centres = np.arange(window.start, n_days + 1) - YEAR_DAYS  # the window's days and today, a year back
    lo, hi = centres - half, centres + half  # days lo..hi-1: two weeks
    smooth = (cum[:, hi] - cum[:, lo]) / np.maximum(count[hi] - count[lo], 1.0)
    base = smooth[:, :-1].mean(axis=1, keepdims=True)
    factor = ((smooth + _YEAR_SHRINK) / (base + _YEAR_SHRINK))[group]
    return factor[:, :-1], factor[:, -1]


def _elasticities(sales: np.ndarray, prices: np.ndarray, wday: np.ndarray, dept: np.ndarray) -> np.ndarray:
    """Per series, its department's own-price elasticity, from week-to-week price changes in the history.

    The slope of the log change of weekly sales on the log change of the weekly price, pooled
    over the department's items and stores, pulled towards ``PRICE_ELASTICITY`` by
    ``ELASTICITY_PRIOR``: price changes are rare, a department's are few.
    """
    starts = np.flatnonzero(wday == 1)  # a Walmart week starts on Saturday
    n_weeks = (sales.shape[1] - starts[0]) // 7 if len(starts) else 0
    if n_weeks < 2:
        return np.full(sales.shape[0], PRICE_ELASTICITY)
    span = slice(starts[0], starts[0] + 7 * n_weeks)
    weekly = sales[:, span].reshape(len(sales), n_weeks, 7).sum(axis=2)
    weekly_price = prices[:, span].reshape(len(sales), n_weeks, 7).mean(axis=2)  # NaN unless on sale all week
    with np.errstate(invalid="ignore", divide="ignore"):
        d_price = np.log(weekly_price[:, 1:] / weekly_price[:, :-1])
        d_sales = np.log((weekly[:, 1:] + 1.0) / (weekly[:, :-1] + 1.0))
    changed = np.isfinite(d_price) & (np.abs(d_price) > 1e-4) & (weekly[:, 1:] + weekly[:, :-1] > 0)
    cross = np.bincount(dept, weights=np.where(changed, d_price * d_sales, 0).sum(axis=1))
    square = np.bincount(dept, weights=np.where(changed, d_price * d_price, 0).sum(axis=1))
    slope = (cross - ELASTICITY_PRIOR * PRICE_ELASTICITY) / (square + ELASTICITY_PRIOR)
    return np.clip(-slope, *ELASTICITY_RANGE)[dept]


def _event_factor(sales: np.ndarray, calendar: pd.DataFrame, today: pd.Series, group: np.ndarray) -> np.ndarray:
    """What today's event did last time to each store x category's sales (1 with no event or no past)."""
    name = today.get("event_name_1")
    past = np.flatnonzero(calendar["event_name_1"].to_numpy() == name) if isinstance(name, str) and name else []
    if len(past) == 0:
        return np.ones(sales.shape[0])
    j = int(past[-1])
    event = _event_days(calendar)
    neighbours = [k for k in range(j - 14, j + 15, 7) if k != j and 0 <= k < sales.shape[1] and not event[k]]
    if not neighbours:
        return np.ones(sales.shape[0])
    return _group_ratio(sales[:, j], sales[:, neighbours].mean(axis=1), group)


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


def _persistence(recent: np.ndarray, fitted: np.ndarray, usable: np.ndarray,
                 group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Today's multiplier for how far the last week ran above or below the level, and the window's (n, L).

    Real demand wanders: a week above the level is followed by weeks above it more often than
    not. The window's weekly deviations from the fitted means, ``r_w = sales_w / fitted_w - 1``,
    give per store x category the share of a week's deviation that carries into the next
    (``phi``, the slope of ``r_{w+1}`` on ``r_w``, pooled and weighted by the fitted sales; in
    0..``_MAX_PERSISTENCE``); today's multiplier is ``1 + phi * r_last``. Noise does not
    carry over, so ``phi`` is small where the deviations are mostly noise.
    """
    n, length = recent.shape
    weeks = length // 7
    ones = np.ones(n)
    if weeks < 3:
        return ones, np.ones((n, length))
    span = slice(length - 7 * weeks, length)  # whole weeks ending yesterday
    observed = np.where(usable, recent, 0)[:, span].reshape(n, weeks, 7).sum(axis=2)
    expected = np.where(usable, fitted, 0)[:, span].reshape(n, weeks, 7).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = np.where(expected > 0, observed / expected - 1.0, 0.0)
    weight = expected[:, :-1]
    cross = np.bincount(group, weights=(weight * deviation[:, :-1] * deviation[:, 1:]).sum(axis=1))
    square = np.bincount(group, weights=(weight * deviation[:, :-1] ** 2).sum(axis=1))
    phi = np.clip(cross / np.maximum(square, 1e-9), 0.0, _MAX_PERSISTENCE)[group]
    carried = np.maximum(1.0 + phi[:, None] * deviation, 0.0)  # what each week passes to the next
    window = np.ones((n, length))
    window[:, span] = np.concatenate([np.ones((n, 1)), carried[:, :-1]], axis=1).repeat(7, axis=1)
    return carried[:, -1], window


def _week_before(sales: np.ndarray, prices: np.ndarray, window: slice) -> np.ndarray | None:
    """The sales of the level window's days a week earlier (NaN where not on sale), or None without them."""
    if window.start < 7:
        return None
    span = slice(window.start - 7, window.stop - 7)
    return np.where(np.isnan(prices[:, span]), np.nan, sales[:, span])


def _intermittency(recent: np.ndarray, fitted: np.ndarray, usable: np.ndarray,
                   week_before: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per series, the zero inflation and the negative binomial shape that reproduce its level window.

    The window's variance around the fitted means and its share of zero days are matched by a
    mixture: zero with probability ``inflation``, else a negative binomial of mean
    ``fitted / (1 - inflation)`` and shape ``shape`` (``inf``: Poisson). A few fixed-point steps
    solve the two together (the zeros the negative binomial gives depend on its shape).
    """
    days = np.maximum(usable.sum(axis=1), 1)
    m = np.where(usable, fitted, 0).sum(axis=1) / days
    if week_before is None:
        v = np.where(usable, (recent - fitted) ** 2, 0).sum(axis=1) / days
    else:  # half the squared change from the same weekday a week before: the noise, without what carries
        # over (a series' own weekday pattern, a level that wanders), which the fitted means may miss
        pairs = usable & ~np.isnan(week_before)
        change = np.where(pairs, (recent - np.nan_to_num(week_before)) ** 2, 0).sum(axis=1)
        v = change / (2.0 * np.maximum(pairs.sum(axis=1), 1))
    zeros = np.where(usable, recent == 0, False).sum(axis=1) / days
    inflation = np.zeros(len(m))
    for _ in range(4):
        keep = 1.0 - inflation
        excess = v - m - inflation / keep * m * m  # the variance the negative binomial must add
        with np.errstate(invalid="ignore", divide="ignore"):
            shape = np.where(excess > 1e-9, m * m / (keep * np.maximum(excess, 1e-9)), np.inf)
        shape = np.maximum(shape, _MIN_SHAPE)
        mu = m / keep  # the zeros of the window's average day: per day would cost L times more
        finite = np.isfinite(shape)
        k = np.where(finite, shape, 1.0)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            model_zeros = np.where(finite, (k / (k + mu)) ** k, np.exp(-mu))
        inflation = np.clip((zeros - model_zeros) / np.maximum(1.0 - model_zeros, 1e-9), 0.0, _MAX_ZERO_INFLATION)
    inflation = np.where(usable.any(axis=1) & (m > 0), inflation, 0.0)
    return inflation, shape


def _zero_inflated_negative_binomial(mean: np.ndarray, inflation: np.ndarray, shape: np.ndarray,
                                     rng: np.random.Generator) -> np.ndarray:
    """Counts of mean ``mean``: 0 with probability ``inflation``, else gamma-Poisson of shape ``shape``."""
    mu = np.maximum(mean, 0) / (1.0 - inflation)
    finite = np.isfinite(shape)
    k = np.where(finite, shape, 1.0)
    rate = np.where(finite, rng.gamma(k, mu / k), mu)
    counts = rng.poisson(rate)
    return np.where(rng.random(len(mean)) < inflation, 0, counts).astype(np.int64)
