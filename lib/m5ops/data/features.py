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
ROW_BLOCK = 512  # series per pass of the sales features: float64 temporaries of a few MB
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
    n, count = sales.shape[0], max(sales.shape[1] - offset, 0)
    columns = {name: np.empty((n, count), dtype=np.float32) for name in LAG_COLUMNS + ROLLING_COLUMNS}
    for lo in range(0, n, ROW_BLOCK):
        rows = slice(lo, min(lo + ROW_BLOCK, n))
        _sales_features(sales[rows], offset, {name: matrix[rows] for name, matrix in columns.items()})
    running_max = np.fmax.accumulate(prices, axis=1)
    if price_max_before is not None:
        running_max = np.fmax(running_max, price_max_before[:, None])
    price = prices[:, offset:].copy()
    previous = _shifted(prices, offset - PRICE_WEEK, np.empty((n, count), dtype=np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["sell_price"] = price
        columns["price_rel_max"] = (price / running_max[:, offset:]).astype(np.float32, copy=False)
        columns["price_change_week"] = (price / previous - 1).astype(np.float32, copy=False)
    return FeatureBlock(out_start, columns, sales[:, offset:].copy(), running_max[:, offset:].astype(np.float32))


def _sales_features(sales: np.ndarray, offset: int, out: dict[str, np.ndarray]) -> None:
    """Fill the lag and rolling columns of some series (``out``: their rows of each column).

    The output days are consecutive, so every feature reads consecutive columns: slices, not
    a gather per element. A few hundred series at a time keep the float64 temporaries small.
    """
    cum = _prefix_sums(sales)
    cum_sq = _prefix_sums(np.square(sales, dtype=np.float64))
    for k in LAGS:
        _shifted(sales, offset - k, out[f"lag_{k}"])
    for w in ROLLING_MEANS:
        _rolling_mean(cum, offset - SHIFT, w, out[f"rmean_{w}"])
    for w in ROLLING_STDS:
        _rolling_std(cum, cum_sq, offset - SHIFT, w, out[f"rstd_{w}"])


def _prefix_sums(values: np.ndarray) -> np.ndarray:
    """Cumulative sums along days with a leading zero column, in float64 (exact for counts)."""
    cum = np.empty((values.shape[0], values.shape[1] + 1), dtype=np.float64)
    cum[:, 0] = 0.0
    np.cumsum(values, axis=1, dtype=np.float64, out=cum[:, 1:])
    return cum


def _shifted(matrix: np.ndarray, start: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` with columns ``start..`` of a matrix, NaN where they fall before it."""
    count = out.shape[1]
    skip = min(max(-start, 0), count)
    out[:, :skip] = np.nan
    out[:, skip:] = matrix[:, start + skip:start + count]
    return out


def _window_sums(cum: np.ndarray, start: int, count: int, window: int) -> tuple[int, np.ndarray]:
    """Sums over the ``window`` days ending at days ``start..start+count-1``, complete windows only.

    Returns how many leading days have an incomplete window, and the sums (float64) of the others.
    """
    skip = min(max(window - 1 - start, 0), count)
    hi = start + skip + 1  # cum[:, e + 1] - cum[:, e + 1 - window] is the window ending at day e
    return skip, np.subtract(cum[:, hi:start + count + 1], cum[:, hi - window:start + count + 1 - window])


def _rolling_mean(cum: np.ndarray, start: int, window: int, out: np.ndarray) -> None:
    """Mean over complete windows ending at days ``start..``; NaN where the window is incomplete."""
    skip, sums = _window_sums(cum, start, out.shape[1], window)
    out[:, :skip] = np.nan
    np.divide(sums, window, out=out[:, skip:])  # divided in float64, then rounded to float32


def _rolling_std(cum: np.ndarray, cum_sq: np.ndarray, start: int, window: int, out: np.ndarray) -> None:
    """Population std over complete windows; exact zero on constant windows of counts."""
    skip, sums = _window_sums(cum, start, out.shape[1], window)
    _, squares = _window_sums(cum_sq, start, out.shape[1], window)
    # Integer sums are exact in float64, so w*sum(x^2) - sum(x)^2 is exact: no float noise.
    squares *= window
    sums *= sums
    squares -= sums
    np.maximum(squares, 0.0, out=squares)
    squares /= window * window
    out[:, :skip] = np.nan
    np.sqrt(squares, out=out[:, skip:])  # the root in float64, then rounded to float32


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
    return pd.DataFrame(day_columns(block, j, calendar, states))


def day_columns(block: FeatureBlock, j: int, calendar: pd.DataFrame, states: pd.Series) -> dict[str, np.ndarray]:
    """The columns of ``day_frame`` as arrays, in order (cheaper when they go straight to a file)."""
    day = block.first_day + j
    n = block.sales.shape[0]
    row = calendar.loc[day]
    columns = {
        "series": np.arange(n, dtype=np.int32),
        "day": np.full(n, day, dtype=np.int32),
        "sales": block.sales[:, j].astype(np.float32),
    }
    for name, matrix in block.columns.items():
        columns[name] = matrix[:, j]
    for name in ("wday", "month", "mday", "event"):
        columns[name] = np.full(n, row[name], dtype=np.int8)
    columns["snap"] = snap_of_day(row, *state_codes(states))
    columns["price_max"] = block.price_max[:, j]
    return columns


def snap_of_day(row: pd.Series, codes: np.ndarray, names: list[str]) -> np.ndarray:
    """Each series' SNAP flag on one calendar day: looked up once per state, spread by state codes."""
    return np.array([row.get(f"snap_{s}", 0) for s in names], dtype=np.int8)[codes]


def state_codes(states: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(code of each series' state, state names): a categorical's own codes, without a string per row."""
    if isinstance(states.dtype, pd.CategoricalDtype):
        codes = states.cat.codes.to_numpy()
        if (codes >= 0).all():
            return codes, [str(s) for s in states.cat.categories]
    codes, names = pd.factorize(states.astype(str))
    return codes, list(names)


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
