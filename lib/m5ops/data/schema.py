"""The M5 data model shared by every part: column names, day numbering, the in-memory data set.

Days are numbered as in M5: day 1 is ``d_1`` = 2011-01-29 (a Saturday, the first day of Walmart
week 11101). Every module works with these integer day numbers; ``d_`` strings and dates exist
only at the edges (files, CLI, charts).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from m5ops.errors import DataError

DAY_ONE = pd.Timestamp("2011-01-29")
HIERARCHY = ["item_id", "dept_id", "cat_id", "store_id", "state_id"]
SERIES_COLUMNS = ["id", *HIERARCHY]
CALENDAR_COLUMNS = [
    "date", "wm_yr_wk", "weekday", "wday", "month", "year", "d",
    "event_name_1", "event_type_1", "event_name_2", "event_type_2",
    "snap_CA", "snap_TX", "snap_WI",
]
PRICE_COLUMNS = ["store_id", "item_id", "wm_yr_wk", "sell_price"]
STATES = ["CA", "TX", "WI"]
STORES = ["CA_1", "CA_2", "CA_3", "CA_4", "TX_1", "TX_2", "TX_3", "WI_1", "WI_2", "WI_3"]
DEPARTMENTS = {
    "FOODS": ["FOODS_1", "FOODS_2", "FOODS_3"],
    "HOBBIES": ["HOBBIES_1", "HOBBIES_2"],
    "HOUSEHOLD": ["HOUSEHOLD_1", "HOUSEHOLD_2"],
}
CATEGORIES = list(DEPARTMENTS)
HORIZON = 28
RECENT_DAYS = 2 * HORIZON  # the recent sales shown beside a forecast, and read by the baselines
_D_PATTERN = re.compile(r"^d_([1-9][0-9]*)$")


def day_number(d: str) -> int:
    """``'d_1914'`` -> 1914; anything else is a DataError naming the bad label."""
    match = _D_PATTERN.match(str(d))
    if not match:
        raise DataError(f"{d!r} is not an M5 day label; expected d_<positive integer>, e.g. d_1914")
    return int(match.group(1))


def day_label(day: int) -> str:
    """1914 -> ``'d_1914'``."""
    return f"d_{int(day)}"


def day_date(day: int | np.ndarray) -> pd.Timestamp | pd.DatetimeIndex:
    """The calendar date of a day number (or an array of them)."""
    if np.ndim(day) == 0:
        return DAY_ONE + pd.Timedelta(days=int(day) - 1)
    return pd.DatetimeIndex(DAY_ONE + pd.to_timedelta(np.asarray(day) - 1, unit="D"))


def date_day(date) -> int:
    """The day number of a calendar date."""
    return int((pd.Timestamp(date) - DAY_ONE).days) + 1


@dataclass
class M5Dataset:
    """M5 data in memory, dense by series and day.

    - ``series``: one row per series in file order, columns ``SERIES_COLUMNS`` (categoricals);
      row ``i`` is series index ``i`` everywhere else (store, features, forecasts).
    - ``calendar``: the calendar's rows with an int ``day`` column and ``date`` as datetime;
      it may reach past the sales (M5's calendar runs to d_1969).
    - ``sales``: int array (n_series, n_days); column ``j`` is day ``first_day + j``.
    - ``prices``: float32 array of the same shape, the price in force that day; weeks with no
      price row are carried forward from the last known price, never filled from the future,
      so a day before a series' first price is NaN.
    """

    series: pd.DataFrame
    calendar: pd.DataFrame
    sales: np.ndarray
    prices: np.ndarray
    first_day: int = 1

    @property
    def last_day(self) -> int:
        return self.first_day + self.sales.shape[1] - 1

    @property
    def n_series(self) -> int:
        return self.sales.shape[0]

    def days(self) -> np.ndarray:
        return np.arange(self.first_day, self.last_day + 1)

    def day_slice(self, start: int, end: int) -> "M5Dataset":
        """The days ``start..end`` (inclusive) of every series, sharing the series table."""
        if start < self.first_day or end > self.last_day or start > end:
            raise DataError(
                f"days {start}..{end} are outside the data set's days {self.first_day}..{self.last_day}"
            )
        cols = slice(start - self.first_day, end - self.first_day + 1)
        return M5Dataset(self.series, self.calendar, self.sales[:, cols], self.prices[:, cols], start)
