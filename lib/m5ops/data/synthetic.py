"""Synthetic M5-format data: the project's embedded default when no real M5 files are at hand.

Every series is a negative-binomial (Poisson-gamma) count around a level built in log space:

    item x store base level x trend x yearly season x weekly profile x slow local level
    x event effect x SNAP effect (FOODS, on the state's SNAP days) x price ^ -elasticity

and set to zero before the item's launch in the store and during out-of-stock spells. Prices are
per item (most stores share them) with rare persistent changes and one-week discounts, and change
only at Walmart week boundaries. A series has prices from the week of its first sale, as in the
real sell_prices.csv. Sales levels and dispersion are set so that the last 28 days look like the
real cross-section of all 30,490 M5 series over d_1914..d_1941 (mean units and share of zeros per
category); weekday profile, SNAP uplift, Christmas closure and price behaviour follow the real slice.

The whole (series x days) matrix is computed with numpy in blocks of series, so the full M5
shape (30,490 series x 1,941 days) takes seconds and well under a GiB beyond its output.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from m5ops.data.calendar import build_calendar
from m5ops.data.schema import SERIES_COLUMNS, STORES, M5Dataset
from m5ops.errors import ParameterError

# Departments in the real file's row order (HOBBIES, HOUSEHOLD, FOODS) with their M5 item counts.
M5_ITEMS_PER_DEPT = {
    "HOBBIES_1": 416, "HOBBIES_2": 149, "HOUSEHOLD_1": 532, "HOUSEHOLD_2": 515,
    "FOODS_1": 216, "FOODS_2": 398, "FOODS_3": 823,
}
# Per category: median units/day of a selling series, spread of item levels (log sd), median
# price and its log sd, own-price elasticity, summer peak day of year, yearly amplitude.
CATEGORY = {
    "FOODS": dict(level=1.2, level_sd=0.9, price=2.2, price_sd=0.75, elasticity=1.8, peak=200, season=0.12),
    "HOBBIES": dict(level=0.5, level_sd=0.85, price=3.5, price_sd=0.95, elasticity=1.1, peak=200, season=0.08),
    "HOUSEHOLD": dict(level=0.52, level_sd=0.9, price=3.5, price_sd=0.85, elasticity=1.3, peak=210, season=0.06),
}
# Relative store sizes (M5: CA_3 sells most, CA_4 least).
STORE_SCALE = {"CA_1": 1.1, "CA_2": 0.85, "CA_3": 1.6, "CA_4": 0.6, "TX_1": 0.85,
               "TX_2": 1.05, "TX_3": 0.9, "WI_1": 0.75, "WI_2": 1.05, "WI_3": 0.95}
# Sat..Sun peak, Tuesday-Wednesday trough (real slice, normalised mean by wday: 1.23 1.16 0.92
# 0.88 0.88 0.90 1.03); HOBBIES and HOUSEHOLD are a little more weekend-heavy than FOODS.
WDAY_PROFILE = np.array([1.23, 1.16, 0.92, 0.88, 0.88, 0.90, 1.03])
WDAY_EXTRA = {"FOODS": 1.0, "HOBBIES": 1.2, "HOUSEHOLD": 1.15}
# FOODS uplift on the state's SNAP days (real slice: CA 1.12, TX 1.10, WI 1.23 as raw ratios).
SNAP_UPLIFT = {"CA": 1.11, "TX": 1.09, "WI": 1.21}
SNAP_OTHER = 1.02  # SNAP money frees budget for non-food a little
# Events with a known direction; the others get a small random effect per department.
EVENT_EFFECT = {
    "Christmas": 0.003,  # stores closed: the real slice sells 1-8 units where ~1,500 is usual
    "Thanksgiving": 0.8, "NewYear": 0.9, "Easter": 0.95, "LaborDay": 1.1, "IndependenceDay": 1.08,
    "MemorialDay": 1.05, "PresidentsDay": 1.05,
}
EVENT_BY_CATEGORY = {
    ("SuperBowl", "FOODS"): 1.12, ("SuperBowl", "HOBBIES"): 0.9, ("Halloween", "HOBBIES"): 1.2,
    ("ValentinesDay", "HOBBIES"): 1.1, ("Mother's day", "HOBBIES"): 0.9,
}
# Named sizes (``m5ops init --size``) as arguments of ``generate``; None items = M5's own counts.
SIZES = {
    "demo": {"n_items_per_dept": 3, "n_days": 1941},  # 21 items x 10 stores = 210 series
    "full": {"n_items_per_dept": None, "n_days": 1941},  # the whole M5 shape: 30,490 series
}
_BLOCK = 2048  # series per block: bounds the float64 temporaries to ~32 MB each
_LAUNCH_SHARE = 0.25  # items put on sale during the history; M5 totals grow ~40% over 2011-2016
_STOCKOUT_EXIT = 0.3  # weekly chance an out-of-stock spell ends (mean spell ~3 weeks)


def generate(n_items_per_dept: int | None = None, *, n_series: int | None = None, n_days: int = 1941,
             stores=STORES, seed: int = 0, calendar_days_ahead: int = 28) -> M5Dataset:
    """A synthetic M5 data set, deterministic from the seed; no sizes = the full M5 shape."""
    stores = _check_args(n_items_per_dept, n_series, n_days, stores, calendar_days_ahead)
    items = _items(_dept_counts(n_items_per_dept, n_series, len(stores)))
    series, item_of = _series_table(items, stores, n_series)
    calendar = build_calendar(1, n_days + calendar_days_ahead)
    days = _day_frame(calendar.iloc[:n_days])
    # separate streams, so that a change to the price model leaves the other draws as they were
    param_rng, price_rng, sales_rng = np.random.default_rng(seed).spawn(3)
    params = _series_params(series, item_of, days, param_rng)
    weekly_price = _weekly_prices(series, item_of, days["n_weeks"], price_rng)
    sales, prices = _simulate(days, params, weekly_price, sales_rng)
    return M5Dataset(series, calendar, sales, prices, first_day=1)


def shape(n_items_per_dept: int | None = None, *, n_series: int | None = None, n_days: int = 1941,
          stores=STORES, calendar_days_ahead: int = 28) -> tuple[int, int]:
    """(series, days) that ``generate`` makes from the same arguments, computed without generating."""
    stores = _check_args(n_items_per_dept, n_series, n_days, stores, calendar_days_ahead)
    counts = _dept_counts(n_items_per_dept, n_series, len(stores))
    return (n_series if n_series is not None else sum(counts.values()) * len(stores)), n_days


# --- sizes and hierarchy --------------------------------------------------------------------

def _check_args(n_items_per_dept, n_series, n_days, stores, ahead) -> list[str]:
    """The store list, after every argument is checked; a ParameterError says what to pass."""
    if n_items_per_dept is not None and n_series is not None:
        raise ParameterError("pass n_items_per_dept or n_series, not both (neither = the full M5 shape)")
    for name, value in (("n_items_per_dept", n_items_per_dept), ("n_series", n_series)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ParameterError(f"{name}={value!r} must be a whole number >= 1 (or None)")
    if isinstance(n_days, bool) or not isinstance(n_days, int) or n_days < 1:
        raise ParameterError(f"n_days={n_days!r} must be a whole number >= 1, e.g. 1941 as in M5")
    if isinstance(ahead, bool) or not isinstance(ahead, int) or ahead < 0:
        raise ParameterError(f"calendar_days_ahead={ahead!r} must be a whole number >= 0, e.g. 28")
    stores = [stores] if isinstance(stores, str) else list(stores)
    unknown = [s for s in stores if s not in STORES]
    if unknown or not stores or len(set(stores)) != len(stores):
        raise ParameterError(f"stores={stores!r} must be distinct M5 stores from {STORES}")
    return [s for s in STORES if s in stores]  # the real file's store order


def _dept_counts(n_items_per_dept, n_series, n_stores) -> dict[str, int]:
    """Items per department: given, M5's own, or enough for n_series spread like M5's."""
    if n_items_per_dept is not None:
        return {dept: n_items_per_dept for dept in M5_ITEMS_PER_DEPT}
    if n_series is None:
        return dict(M5_ITEMS_PER_DEPT)
    n_items = -(-n_series // n_stores)
    share = np.array(list(M5_ITEMS_PER_DEPT.values())) / sum(M5_ITEMS_PER_DEPT.values())
    counts = np.floor(share * n_items).astype(int)
    counts[np.argsort(-(share * n_items - counts), kind="stable")[: n_items - counts.sum()]] += 1
    return dict(zip(M5_ITEMS_PER_DEPT, counts.tolist()))


def _items(counts: dict[str, int]) -> pd.DataFrame:
    """item_id, dept_id, cat_id of every item, in the real file's order."""
    rows = [(f"{dept}_{i:03d}", dept, dept.rsplit("_", 1)[0]) for dept, n in counts.items() for i in range(1, n + 1)]
    return pd.DataFrame(rows, columns=["item_id", "dept_id", "cat_id"])


def _series_table(items: pd.DataFrame, stores: list[str], n_series: int | None) -> tuple[pd.DataFrame, np.ndarray]:
    """(series table, item position of each row): every item in every store, store by store."""
    n_items, n_stores = len(items), len(stores)
    store_of = np.repeat(np.arange(n_stores), n_items)
    item_of = np.tile(np.arange(n_items), n_stores)
    if n_series is not None:  # drop the surplus stores of the last item, so the size is exact
        keep = item_of * n_stores + store_of < n_series
        store_of, item_of = store_of[keep], item_of[keep]
    table = items.iloc[item_of].reset_index(drop=True)
    table["store_id"] = np.array(stores)[store_of]
    table["state_id"] = table["store_id"].str[:2]
    table["id"] = table["item_id"] + "_" + table["store_id"] + "_evaluation"
    table = table[SERIES_COLUMNS]
    for col in SERIES_COLUMNS:
        table[col] = pd.Categorical(table[col], categories=pd.unique(table[col]))
    return table, item_of


# --- parameters -----------------------------------------------------------------------------

def _day_frame(cal: pd.DataFrame) -> dict:
    """Per-day arrays the simulation reads: weekday, season, weeks, events, SNAP flags."""
    weeks, week_of_day = np.unique(cal["wm_yr_wk"].to_numpy(), return_inverse=True)
    doy = cal["date"].dt.day_of_year.to_numpy()
    events = [cal[f"event_name_{k}"].to_numpy(dtype=object) for k in (1, 2)]
    return {
        "n": len(cal), "wday": cal["wday"].to_numpy() - 1, "doy": doy, "week": week_of_day,
        "n_weeks": len(weeks), "years": (np.arange(len(cal)) - len(cal) / 2) / 365.25,
        "events": events, "snap": {s: cal[f"snap_{s}"].to_numpy() for s in SNAP_UPLIFT},
    }


def _series_params(series: pd.DataFrame, item_of: np.ndarray, days: dict,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-series parameters: level, trend, season, dispersion, elasticity, launch, stock-outs."""
    n, cat = len(series), series["cat_id"].astype(str).to_numpy()
    n_items = item_of.max() + 1
    prof = {k: np.array([CATEGORY[c][k] for c in cat]) for k in CATEGORY["FOODS"]}
    # an item sells well or badly in every store; a right-skewed share gives M5's few best sellers
    item_z = (rng.standard_normal(n_items) + rng.exponential(0.5, n_items) - 0.5)[item_of]
    store = np.log([STORE_SCALE[s] for s in series["store_id"].astype(str)])
    log_level = np.log(prof["level"]) + prof["level_sd"] * (0.85 * item_z + 0.45 * rng.standard_normal(n))
    return {
        "log_level": np.minimum(log_level + store, np.log(120.0)),  # M5's best series: ~120/day in d_1914..d_1941
        "trend": rng.normal(0.0, 0.12, n) + rng.normal(0.0, 0.08, n_items)[item_of],
        "season_amp": prof["season"] * rng.gamma(4.0, 0.25, n),
        "season_peak": prof["peak"] + rng.normal(0.0, 20.0, n),
        "wday_power": np.array([WDAY_EXTRA[c] for c in cat]) * rng.gamma(25.0, 0.04, n),
        "shape": np.exp(rng.normal(np.log(2.0), 0.5, n)),  # gamma shape: smaller = burstier
        "elasticity": prof["elasticity"] * rng.gamma(8.0, 0.125, n),
        "launch": _launch_days(item_of, days["n"], rng),
        "stockout": _stockout_weeks(n, days["n_weeks"], rng),
        "local": _local_level(n, days["n_weeks"], rng),
        "effects": _effect_table(series, days, rng),
    }


def _launch_days(item_of: np.ndarray, n_days: int, rng: np.random.Generator) -> np.ndarray:
    """Day index each series goes on sale: most items from the start, some during the history."""
    n_items = item_of.max() + 1
    late = rng.random(n_items) < _LAUNCH_SHARE
    item_day = np.where(late, rng.integers(0, max(int(0.9 * n_days), 1), n_items), 0)
    # a new item reaches the stores over a few weeks; the items of day one are everywhere already
    store_lag = np.where(late[item_of], rng.exponential(30.0, len(item_of)), 0.0)
    return np.minimum(item_day[item_of] + store_lag.astype(int), n_days - 1)


def _stockout_weeks(n: int, n_weeks: int, rng: np.random.Generator) -> np.ndarray:
    """(series, weeks) True where the series is out of stock: a two-state chain per series."""
    enter = np.minimum(np.exp(rng.normal(np.log(0.006), 1.0, n)), 0.2)
    draws = rng.random((n_weeks, n), dtype=np.float32)
    out = np.zeros((n, n_weeks), dtype=bool)
    state = rng.random(n) < enter / (enter + _STOCKOUT_EXIT)  # start in the chain's steady state
    for w in range(n_weeks):  # a loop over weeks only; each step is vectorised over series
        state = np.where(state, draws[w] >= _STOCKOUT_EXIT, draws[w] < enter)
        out[:, w] = state
    return out


def _local_level(n: int, n_weeks: int, rng: np.random.Generator) -> np.ndarray:
    """(series, weeks) slow log-level wander: AR(1) with weekly steps, stationary sd ~0.25."""
    phi, sd = 0.97, 0.25 * np.sqrt(1 - 0.97**2)
    shocks = rng.normal(0.0, sd, (n_weeks, n)).astype(np.float32)
    out = np.empty((n, n_weeks), dtype=np.float32)
    level = rng.normal(0.0, 0.25, n).astype(np.float32)
    for w in range(n_weeks):
        level = phi * level + shocks[w]
        out[:, w] = level
    return out


def _effect_table(series: pd.DataFrame, days: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(group of each series, (groups, days) log effect of events and SNAP), groups = dept x state."""
    dept = series["dept_id"].astype(str).to_numpy()
    state = series["state_id"].astype(str).to_numpy()
    keys, group_of = np.unique(pd.Series(dept) + "|" + state, return_inverse=True)
    names = sorted({e for col in days["events"] for e in col if isinstance(e, str)})
    hits = np.array([(days["events"][0] == n) | (days["events"][1] == n) for n in names], dtype=np.float32)
    depts = sorted(set(dept))
    noise = rng.normal(0.0, 0.05, (len(depts), len(names)))  # events without a known direction
    table = np.zeros((len(keys), days["n"]), dtype=np.float32)
    for g, key in enumerate(keys):
        dep, st = key.split("|")
        cat = dep.rsplit("_", 1)[0]
        known = [EVENT_BY_CATEGORY.get((n, cat), EVENT_EFFECT.get(n)) for n in names]
        log_effect = np.where([k is None for k in known], noise[depts.index(dep)],
                              np.log([k or 1.0 for k in known]))
        snap_up = SNAP_UPLIFT[st] if cat == "FOODS" else SNAP_OTHER
        table[g] = np.log(snap_up) * days["snap"][st] + (log_effect @ hits if names else 0.0)
    return group_of, table


# --- prices and sales -----------------------------------------------------------------------

def _weekly_prices(series: pd.DataFrame, item_of: np.ndarray, n_weeks: int,
                   rng: np.random.Generator) -> np.ndarray:
    """(series, weeks) float32 shelf prices: item paths shared by stores, a few store moves, discounts."""
    n, n_items = len(series), item_of.max() + 1
    cat = series["cat_id"].astype(str).to_numpy()[np.unique(item_of, return_index=True)[1]]
    median = np.log([CATEGORY[c]["price"] for c in cat])
    spread = np.array([CATEGORY[c]["price_sd"] for c in cat])
    base = np.clip(np.exp(median + spread * rng.standard_normal(n_items)), 0.3, 30.0)
    # rare persistent changes (real slice: ~1% of weeks), drifting up a little like inflation
    item_moves = np.where(rng.random((n_items, n_weeks)) < 0.009, rng.normal(0.03, 0.12, (n_items, n_weeks)), 0.0)
    own = rng.random(n) < 0.3  # ~72% of real item-weeks have one price in every store
    store_moves = np.where((rng.random((n, n_weeks)) < 0.006) & own[:, None], rng.normal(0.0, 0.1, (n, n_weeks)), 0.0)
    log_price = np.log(base)[item_of, None] + np.cumsum(item_moves, axis=1)[item_of] + np.cumsum(store_moves, axis=1)
    discount = np.where(rng.random((n, n_weeks)) < 0.003, rng.uniform(0.75, 0.92, (n, n_weeks)), 1.0)
    price = np.exp(log_price) * discount
    # shelf prices end in 8 cents (0.98, 1.68, 2.98), as most M5 prices do
    return np.maximum(np.round(price, 1) - 0.02, 0.28).astype(np.float32)


def _simulate(days: dict, params: dict, weekly_price: np.ndarray, rng: np.random.Generator):
    """(sales, prices) for every series and day, computed block by block of series."""
    n, n_days = len(weekly_price), days["n"]
    sales = np.empty((n, n_days), dtype=np.int32)
    for lo in range(0, n, _BLOCK):
        rows = slice(lo, min(lo + _BLOCK, n))
        sales[rows] = rng.poisson(_block_mean(rows, days, params, weekly_price, rng))
    _sell_at_least_once(sales, params["launch"], rng)
    first_week = days["week"][np.argmax(sales > 0, axis=1)]
    prices = np.empty((n, n_days), dtype=np.float32)
    for lo in range(0, n, _BLOCK):
        rows = slice(lo, min(lo + _BLOCK, n))
        block = weekly_price[rows][:, days["week"]]
        block[days["week"][None, :] < first_week[rows, None]] = np.nan  # no price before the first sale
        prices[rows] = block
    small = sales.max() <= np.iinfo(np.int16).max  # as load_m5 does: int16 when the values fit
    return (sales.astype(np.int16) if small else sales), prices


def _block_mean(rows: slice, days: dict, params: dict, weekly_price: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Poisson rates (block, days): the level in log space times a gamma draw (negative binomial)."""
    p = {k: v[rows] for k, v in params.items() if k != "effects"}
    group_of, effects = params["effects"]
    week, t = days["week"], np.arange(days["n"])
    angle = 2 * np.pi * days["doy"] / 365.25
    peak = 2 * np.pi * p["season_peak"] / 365.25
    wday_log = np.log(WDAY_PROFILE / WDAY_PROFILE.mean())[days["wday"]]
    log_price = np.log(weekly_price[rows])
    log_ref = np.median(log_price, axis=1)  # demand answers the price against its usual level
    season = np.cos(peak)[:, None] * np.cos(angle) + np.sin(peak)[:, None] * np.sin(angle)  # cos(angle - peak)
    log_mu = (p["log_level"][:, None] + p["trend"][:, None] * days["years"] + p["season_amp"][:, None] * season
              + p["wday_power"][:, None] * wday_log
              - p["elasticity"][:, None] * (log_price - log_ref[:, None])[:, week]).astype(np.float32)
    log_mu += p["local"][:, week]
    log_mu += effects[group_of[rows]]
    mu = np.exp(log_mu)
    mu[(t[None, :] < p["launch"][:, None]) | p["stockout"][:, week]] = 0.0
    shape = np.broadcast_to(p["shape"][:, None].astype(np.float32), mu.shape)
    return mu * (rng.standard_gamma(shape, dtype=np.float32) / shape)  # gamma with mean 1


def _sell_at_least_once(sales: np.ndarray, launch: np.ndarray, rng: np.random.Generator) -> None:
    """Give a series that never sold one unit on a day after its launch (every M5 series sells)."""
    never = np.flatnonzero(~sales.any(axis=1))
    if never.size:
        n_days = sales.shape[1]
        sales[never, launch[never] + (rng.random(never.size) * (n_days - launch[never])).astype(int)] = 1
