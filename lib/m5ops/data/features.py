"""Features per (series, day), from one vectorised core over a dense (series x days) matrix.

Every feature of day t uses sales up to t-28 only (M5's 28-day horizon), so any day of a
28-day window can be predicted from the data that existed at the window's start. The same
core builds the whole history at ``init`` and one new day at each arrival: a day needs the
``HISTORY_DAYS`` days before it and the previous day's running price maximum, never the
whole history.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SHIFT = 28
LAGS = (28, 35, 42, 49, 56)
ROLLING_MEANS = (7, 28, 56)
ROLLING_STDS = (7, 28)
PRICE_WEEK = 7
HISTORY_DAYS = SHIFT + max(ROLLING_MEANS + ROLLING_STDS) - 1
EVENT_TYPES = {"Sporting": 1, "Cultural": 2, "National": 3, "Religious": 4}

LAG_COLUMNS = [f"lag_{k}" for k in LAGS]
ROLLING_COLUMNS = [f"rmean_{w}" for w in ROLLING_MEANS] + [f"rstd_{w}" for w in ROLLING_STDS]
PRICE_COLUMNS = ["sell_price", "price_rel_max", "price_change_week"]
CALENDAR_FEATURES = ["wday", "month", "mday", "event", "snap"]
FEATURE_COLUMNS = LAG_COLUMNS + ROLLING_COLUMNS + PRICE_COLUMNS + CALENDAR_FEATURES
CATEGORICAL_COLUMNS = ["item_id", "dept_id", "cat_id", "store_id", "state_id"]


@dataclass
class FeatureBlock:
    """Numeric features of consecutive days, each an (n_series, n_days) float32 array."""

    first_day: int
    columns: dict[str, np.ndarray]
    sales: np.ndarray
    price_max: np.ndarray

    @property
    def n_days(self) -> int:
        return self.sales.shape[1]


def compute_block(
    sales: np.ndarray,
    prices: np.ndarray,
    first_day: int,
    out_start: int,
    price_max_before: np.ndarray | None = None,
) -> FeatureBlock:
    """Features of days ``out_start..`` from a matrix whose column 0 is ``first_day``.

    ``price_max_before`` is the running price maximum up to the day before ``first_day``
    (None when the matrix starts at the beginning of the data).
    """
    offset = out_start - first_day
    n, width = sales.shape
    out = np.arange(offset, width)
    cum = _prefix_sums(sales)
    cum_sq = _prefix_sums(np.square(sales, dtype=np.float64))
    columns: dict[str, np.ndarray] = {}
    for k in LAGS:
        columns[f"lag_{k}"] = _take_days(sales, out - k)
    for w in ROLLING_MEANS:
        columns[f"rmean_{w}"] = _rolling_mean(cum, out - SHIFT, w)
    for w in ROLLING_STDS:
        columns[f"rstd_{w}"] = _rolling_std(cum, cum_sq, out - SHIFT, w)
    running_max = np.fmax.accumulate(prices, axis=1)
    if price_max_before is not None:
        running_max = np.fmax(running_max, price_max_before[:, None])
    price = prices[:, out]
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["sell_price"] = price
        columns["price_rel_max"] = (price / running_max[:, out]).astype(np.float32)
        columns["price_change_week"] = (price / _take_days(prices, out - PRICE_WEEK) - 1).astype(np.float32)
    return FeatureBlock(out_start, columns, sales[:, out], running_max[:, out].astype(np.float32))


def _prefix_sums(values: np.ndarray) -> np.ndarray:
    """Cumulative sums along days with a leading zero column, in float64 (exact for counts)."""
    cum = np.zeros((values.shape[0], values.shape[1] + 1), dtype=np.float64)
    np.cumsum(values, axis=1, dtype=np.float64, out=cum[:, 1:])
    return cum


def _take_days(matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Columns of a matrix by index, NaN where the index falls before the matrix."""
    result = np.full((matrix.shape[0], len(columns)), np.nan, dtype=np.float32)
    valid = columns >= 0
    result[:, valid] = matrix[:, columns[valid]]
    return result


def _window_sums(cum: np.ndarray, ends: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the ``window`` days ending at each index in ``ends``, and which are complete."""
    valid = ends - window + 1 >= 0
    hi = np.clip(ends + 1, 0, cum.shape[1] - 1)
    lo = np.clip(ends + 1 - window, 0, cum.shape[1] - 1)
    return cum[:, hi] - cum[:, lo], valid


def _rolling_mean(cum: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Mean over complete windows ending at ``ends``; NaN where the window is incomplete."""
    sums, valid = _window_sums(cum, ends, window)
    result = (sums / window).astype(np.float32)
    result[:, ~valid] = np.nan
    return result


def _rolling_std(cum: np.ndarray, cum_sq: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Population std over complete windows; exact zero on constant windows of counts."""
    sums, valid = _window_sums(cum, ends, window)
    squares, _ = _window_sums(cum_sq, ends, window)
    # Integer sums are exact in float64, so w*sum(x^2) - sum(x)^2 is exact: no float noise.
    variance = np.maximum(window * squares - sums * sums, 0.0) / (window * window)
    result = np.sqrt(variance).astype(np.float32)
    result[:, ~valid] = np.nan
    return result


def calendar_features(calendar: pd.DataFrame) -> pd.DataFrame:
    """Calendar features per day (index ``day``): wday, month, mday, event, snap_<state>."""
    frame = pd.DataFrame({
        "wday": calendar["wday"].astype(np.int8).to_numpy(),
        "month": calendar["month"].astype(np.int8).to_numpy(),
        "mday": pd.to_datetime(calendar["date"]).dt.day.astype(np.int8).to_numpy(),
        "event": calendar["event_type_1"].map(EVENT_TYPES).fillna(0).astype(np.int8).to_numpy(),
    }, index=pd.Index(calendar["day"].astype(int).to_numpy(), name="day"))
    for column in [c for c in calendar.columns if c.startswith("snap_")]:
        frame[column] = calendar[column].astype(np.int8).to_numpy()
    return frame


def day_frame(block: FeatureBlock, j: int, calendar: pd.DataFrame, states: pd.Series) -> pd.DataFrame:
    """The stored feature rows of day ``block.first_day + j`` (no id columns: joined on read).

    ``calendar`` comes from ``calendar_features``; ``states`` is each series' state id.
    """
    day = block.first_day + j
    n = block.sales.shape[0]
    row = calendar.loc[day]
    frame = pd.DataFrame({
        "series": np.arange(n, dtype=np.int32),
        "day": np.full(n, day, dtype=np.int32),
        "sales": block.sales[:, j].astype(np.float32),
    })
    for name, matrix in block.columns.items():
        frame[name] = matrix[:, j]
    for name in ("wday", "month", "mday", "event"):
        frame[name] = np.full(n, row[name], dtype=np.int8)
    state_codes, state_names = pd.factorize(states.astype(str))
    snap_by_state = np.array([row.get(f"snap_{s}", 0) for s in state_names], dtype=np.int8)
    frame["snap"] = snap_by_state[state_codes]
    frame["price_max"] = block.price_max[:, j]
    return frame


def attach_ids(frame: pd.DataFrame, series: pd.DataFrame) -> pd.DataFrame:
    """Add the categorical id columns of each row's series."""
    codes = frame["series"].to_numpy()
    for column in CATEGORICAL_COLUMNS:
        values = series[column]
        categorical = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
        frame[column] = pd.Categorical.from_codes(
            categorical.cat.codes.to_numpy()[codes], categories=categorical.cat.categories
        )
    return frame
