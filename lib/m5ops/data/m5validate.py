"""Checks on M5-format files and data sets; every failure is a DataError naming file, problem and fix.

The functions here only look at values already read (headers, tables, arrays); reading is the job
of ``m5files``. Each message reads "<file>: <what is wrong>; <what to do>".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from m5ops.data.schema import (
    CALENDAR_COLUMNS, CATEGORIES, DEPARTMENTS, SERIES_COLUMNS, STATES, STORES,
    M5Dataset, day_date, day_label, day_number,
)
from m5ops.errors import DataError

# The filter argument of load_m5 -> (sales file column, the M5 values every file may hold).
FILTER_COLUMNS = {
    "states": ("state_id", STATES),
    "stores": ("store_id", STORES),
    "categories": ("cat_id", CATEGORIES),
    "departments": ("dept_id", [d for depts in DEPARTMENTS.values() for d in depts]),
}
INT_CALENDAR_COLUMNS = ["wm_yr_wk", "wday", "month", "year", "snap_CA", "snap_TX", "snap_WI"]
_FEW = 5  # how many offending values a message lists before "and N more"


def fail(path: str | Path, problem: str, fix: str) -> DataError:
    """A DataError that reads '<file name>: <problem>; <fix>'."""
    return DataError(f"{Path(path).name}: {problem}; {fix}")


def few(values) -> str:
    """The first few values, comma-separated, with a count of the rest."""
    values = [str(v) for v in values]
    shown = ", ".join(values[:_FEW])
    return shown if len(values) <= _FEW else f"{shown} and {len(values) - _FEW} more"


def check_columns(path: Path, header: list[str], required: list[str]) -> None:
    """Every required column is present and no column appears twice."""
    missing = [c for c in required if c not in header]
    if missing:
        raise fail(path, f"column {missing[0]!r} is missing (header starts {few(header)})",
                   f"the file needs the columns {', '.join(required)}")
    counts = pd.Series(header).value_counts()
    if counts.max() > 1:
        twice = counts.index[counts > 1][0]
        raise fail(path, f"column {twice!r} appears {counts.max()} times", "keep one column of each name")


def sales_days(path: Path, header: list[str]) -> np.ndarray:
    """The day numbers of the d_ columns, which must be contiguous and in increasing order."""
    labels = [c for c in header if c not in SERIES_COLUMNS]
    if not labels:
        raise fail(path, "no d_<day> columns", "the file needs one column per day, d_1, d_2, ...")
    days = []
    for label in labels:
        try:
            days.append(day_number(label))
        except DataError:
            raise fail(path, f"column {label!r} is neither an id column nor a day label",
                       f"expected {', '.join(SERIES_COLUMNS)} then d_<day> columns") from None
    days = np.array(days)
    breaks = np.flatnonzero(np.diff(days) != 1)
    if breaks.size:
        i = breaks[0]
        why = "out of order" if days[i] + 1 in days else f"{day_label(days[i] + 1)} is missing"
        raise fail(path, f"day columns are not contiguous: {labels[i + 1]} follows {labels[i]} ({why})",
                   "the d_ columns must be consecutive days in increasing order")
    return days


def check_days_in_calendar(path: Path, days: np.ndarray, calendar: pd.DataFrame) -> None:
    """Every day column has a calendar row."""
    first, last = int(calendar["day"].iloc[0]), int(calendar["day"].iloc[-1])
    outside = [d for d in (days[0], days[-1]) if not first <= d <= last]
    if outside:
        raise fail(path, f"day column {day_label(outside[0])} is outside the calendar "
                   f"(d_{first}..d_{last})", "use a calendar.csv that covers every sales day")


def validated_calendar(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The calendar's M5 columns plus an int ``day``, ``date`` as datetime; DataError if malformed."""
    check_columns(path, list(raw.columns), CALENDAR_COLUMNS)
    cal = raw[CALENDAR_COLUMNS].copy()
    if cal.empty:
        raise fail(path, "the calendar has no rows", "use the full M5 calendar.csv")
    cal["day"] = [_calendar_day(path, d) for d in cal["d"]]
    _check_consecutive(path, cal["day"].to_numpy(), cal["d"])
    for col in INT_CALENDAR_COLUMNS:
        values = pd.to_numeric(cal[col], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise fail(path, f"column {col} holds {cal[col].iloc[i]!r} on {cal['d'].iloc[i]}, not a whole number",
                       f"every row needs an integer {col}")
        cal[col] = values.astype(np.int64)
    cal["date"] = _calendar_dates(path, cal)
    _check_weeks(path, cal)
    return cal


def _calendar_day(path: Path, d) -> int:
    """One d label as a day number, naming the file if it is not one."""
    try:
        return day_number(d)
    except DataError as err:
        raise fail(path, f"bad d label in column d: {err}", "labels run d_1, d_2, ... one per row") from None


def _check_consecutive(path: Path, days: np.ndarray, labels: pd.Series) -> None:
    """The calendar's days increase by one from row to row."""
    breaks = np.flatnonzero(np.diff(days) != 1)
    if breaks.size:
        i = breaks[0]
        raise fail(path, f"d labels are not consecutive: {labels.iloc[i + 1]} follows {labels.iloc[i]}",
                   "the calendar needs one row per day in order")


def _calendar_dates(path: Path, cal: pd.DataFrame) -> pd.Series:
    """Parsed dates, consecutive and on M5's day numbering (d_1 = 2011-01-29)."""
    dates = pd.to_datetime(cal["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna())[0])
        raise fail(path, f"date {cal['date'].iloc[i]!r} on {cal['d'].iloc[i]} is not a YYYY-MM-DD date",
                   "write dates as YYYY-MM-DD")
    gaps = np.flatnonzero(dates.diff().iloc[1:] != pd.Timedelta(days=1))
    if gaps.size:
        i = gaps[0] + 1
        raise fail(path, f"dates are not consecutive: {cal['d'].iloc[i]} is {dates.iloc[i]:%Y-%m-%d} "
                   f"after {dates.iloc[i - 1]:%Y-%m-%d}", "the calendar needs one row per day in order")
    expected = day_date(int(cal["day"].iloc[0]))
    if dates.iloc[0] != expected:
        raise fail(path, f"{cal['d'].iloc[0]} is dated {dates.iloc[0]:%Y-%m-%d} but M5 puts it on "
                   f"{expected:%Y-%m-%d} (d_1 = 2011-01-29)", "use the M5 calendar's day numbering")
    return dates


def _check_weeks(path: Path, cal: pd.DataFrame) -> None:
    """Walmart weeks never go back and only change on a Saturday (prices map through them)."""
    step = np.diff(cal["wm_yr_wk"].to_numpy())
    saturday = cal["date"].dt.day_of_week.to_numpy()[1:] == 5
    wrong = np.flatnonzero((step < 0) | ((step != 0) & ~saturday)) + 1
    if wrong.size:
        raise fail(path, f"wm_yr_wk changes to {cal['wm_yr_wk'].iloc[wrong[0]]} on {cal['d'].iloc[wrong[0]]}, "
                   "which is not a Saturday or goes back", "weeks run Saturday to Friday and increase")


def check_filter(path: Path, wanted: dict[str, list[str]], seen: dict[str, set], n_kept: int) -> None:
    """Filter values are known M5 (or file) values, and together they select some series."""
    for arg, values in wanted.items():
        col, m5_values = FILTER_COLUMNS[arg]
        valid = sorted(set(m5_values) | seen[col])
        unknown = [v for v in values if v not in valid]
        if unknown:
            raise fail(path, f"unknown {arg} {few(unknown)} in {arg}={values}", f"valid {arg}: {', '.join(valid)}")
    if n_kept == 0 and not wanted:
        raise fail(path, "the file has a header but no series rows", "use a sales file with at least one series")
    if n_kept == 0:
        asked = ", ".join(f"{arg}={values}" for arg, values in wanted.items())
        has = "; ".join(f"{arg} {', '.join(sorted(seen[FILTER_COLUMNS[arg][0]]))}" for arg in wanted)
        raise fail(path, f"the subset {asked} selects no series (the file has {has})",
                   "choose values that occur together in the file")


def check_series(path: Path, series: pd.DataFrame) -> None:
    """Ids are present and unique and agree with their item, department, category, store and state."""
    empty = series[SERIES_COLUMNS].isna().any(axis=1) | (series[SERIES_COLUMNS] == "").any(axis=1)
    if empty.any():
        raise fail(path, f"{int(empty.sum())} rows have an empty id column (first at data row "
                   f"{int(np.flatnonzero(empty)[0]) + 1})", "fill every id column")
    dup = series["id"][series["id"].duplicated()]
    if len(dup):
        raise fail(path, f"{len(dup)} ids appear more than once: {few(dup.unique())}", "keep one row per id")
    dup = series["id"][series.duplicated(["store_id", "item_id"])]
    if len(dup):
        raise fail(path, f"{len(dup)} series repeat another's store and item: {few(dup)}",
                   "keep one series per store_id and item_id (prices are matched on them)")
    parent = {
        "id": series["item_id"] + "_" + series["store_id"],
        "dept_id": series["item_id"].str.rsplit("_", n=1).str[0],
        "cat_id": series["dept_id"].str.rsplit("_", n=1).str[0],
        "state_id": series["store_id"].str.split("_").str[0],
    }
    for col, expected in parent.items():
        # an id is <item_id>_<store_id>_<suffix>, the suffix (evaluation/validation) without "_"
        ok = (series[col].str.rsplit("_", n=1).str[0] if col == "id" else series[col]) == expected
        if not ok.all():
            bad = series.loc[~ok, "id"]
            raise fail(path, f"{col} disagrees with item_id/store_id for {len(bad)} series: {few(bad)}",
                       "ids follow <item_id>_<store_id>_evaluation and item FOODS_1_001 is in FOODS_1/FOODS")


def missing_sales_error(path: Path, series_id: str, column: str) -> DataError:
    """The message for an empty sales cell."""
    return fail(path, f"missing sales value for {series_id} on {column}",
                "every series needs a whole number of units >= 0 for every day (0 if none sold)")


def bad_sales_error(path: Path, series_id: str, column: str, value) -> DataError:
    """The message for a sales cell that is not a non-negative whole number."""
    what = "negative" if str(value).lstrip().startswith("-") else "non-integer"
    return fail(path, f"{what} sales value {value!r} for {series_id} on {column}",
                "sales must be whole unit counts >= 0: correct the value or drop the series")


def check_sales_values(path: Path, sales: np.ndarray, ids: np.ndarray, days: np.ndarray) -> None:
    """No sales value is negative."""
    if sales.size and sales.min() < 0:
        row, col = np.argwhere(sales < 0)[0]
        raise bad_sales_error(path, ids[row], day_label(days[col]), str(sales[row, col]))


def check_price_rows(path: Path, rows: pd.DataFrame, series: pd.DataFrame) -> None:
    """Each series' price row has a week and a positive price, and no week has two rows."""
    def where(bad: pd.Series) -> str:
        i = int(np.flatnonzero(bad)[0])
        s = series.iloc[int(rows["row"].iloc[i])]
        return f"{s.store_id} {s.item_id} week {rows['wm_yr_wk'].iloc[i]:.0f}"

    no_week = rows["wm_yr_wk"].isna()
    if no_week.any():
        s = series.iloc[int(rows["row"][no_week].iloc[0])]
        raise fail(path, f"a price row of {s.store_id} {s.item_id} has an empty wm_yr_wk", "every row needs its week")
    bad = ~(rows["sell_price"] > 0)
    if bad.any():
        raise fail(path, f"{int(bad.sum())} rows have a missing or non-positive sell_price, e.g. {where(bad)}: "
                   f"{rows['sell_price'][bad].iloc[0]}", "prices must be numbers > 0")
    dup = pd.Series(rows["row"].to_numpy() * 1_000_000 + rows["wm_yr_wk"].to_numpy()).duplicated()
    if dup.any():
        raise fail(path, f"{int(dup.sum())} store/item/weeks have more than one row, e.g. {where(dup)}",
                   "keep one price row per store_id, item_id and wm_yr_wk")


def check_all_priced(path: Path, ids: pd.Series, priced: np.ndarray) -> None:
    """Every series' store/item has at least one price row."""
    if not priced.all():
        unpriced = ids[~priced]
        raise fail(path, f"{len(unpriced)} series have no price rows for their store/item: {few(unpriced)}",
                   "add their sell prices or leave them out of the subset")


def check_dataset(ds: M5Dataset) -> None:
    """The parts of a data set fit together well enough to be written as M5 files."""
    missing = [c for c in SERIES_COLUMNS if c not in ds.series.columns]
    if missing:
        raise DataError(f"the data set's series table lacks column {missing[0]!r}; it needs {SERIES_COLUMNS}")
    shape = (len(ds.series), ds.sales.shape[1] if ds.sales.ndim == 2 else -1)
    if ds.sales.shape != shape or ds.prices.shape != shape:
        raise DataError(f"sales {ds.sales.shape} and prices {ds.prices.shape} must both be "
                        f"(series, days) = {shape}; build them from the same series table")
    if not np.issubdtype(ds.sales.dtype, np.integer):
        raise DataError(f"sales are {ds.sales.dtype}, but M5 files hold whole unit counts; "
                        "round and cast them to an integer dtype first")
    lacking = [c for c in [*CALENDAR_COLUMNS, "day"] if c not in ds.calendar.columns]
    if lacking:
        raise DataError(f"the data set's calendar lacks column {lacking[0]!r}; use a calendar from load_m5")
    days = set(ds.calendar["day"])
    lost = [d for d in (ds.first_day, ds.last_day) if d not in days]
    if lost:
        raise DataError(f"the data set's calendar lacks day {day_label(lost[0])}; "
                        "its calendar must cover every sales day")
