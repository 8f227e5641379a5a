"""Reading and writing M5-format files (calendar.csv, sell_prices.csv, sales_train_*.csv, plain or .gz).

``load_m5`` streams the wide sales file and the long price file through pyarrow's CSV reader and
keeps only the rows of the requested subset, so a store or a few items of the full 30,490-series
M5 never sit in memory whole. Checks live in ``m5validate``; every problem is a ``DataError``.
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from m5ops.stores.atomic import atomic_path
from m5ops.data import m5validate as check
from m5ops.data.schema import CALENDAR_COLUMNS, PRICE_COLUMNS, SERIES_COLUMNS, M5Dataset, day_label
from m5ops.errors import DataError

SALES_STEMS = ("sales_train_evaluation", "sales_train_validation")
EVENT_COLUMNS = ["event_name_1", "event_type_1", "event_name_2", "event_type_2"]
_BLOCK_BYTES = 8 << 20  # a few hundred rows of the wide sales file per batch: few batches, bounded memory
_SEP = "\x1f"  # joins store and item into one lookup key; it cannot occur in an M5 id
_PRICE_TYPES = {"store_id": pa.string(), "item_id": pa.string(), "wm_yr_wk": pa.int32(), "sell_price": pa.float64()}


def resolve_m5_file(folder: str | Path, stem: str) -> Path:
    """The path of ``<stem>.csv`` or ``<stem>.csv.gz`` in folder; DataError if neither or both exist."""
    folder = Path(folder)
    found = [p for p in (folder / f"{stem}.csv", folder / f"{stem}.csv.gz") if p.is_file()]
    if len(found) == 2:
        raise DataError(f"{folder} holds both {stem}.csv and {stem}.csv.gz; remove one so it is clear which to read")
    if not found:
        raise DataError(f"{folder} has no {stem}.csv (or {stem}.csv.gz); "
                        "copy the M5 file there or point to the folder that holds it")
    return found[0]


def load_m5(folder: str | Path, *, states=None, stores=None, categories=None, departments=None,
            items: int | None = None) -> M5Dataset:
    """An M5 folder, or the subset of its series the filters select, as an M5Dataset.

    Filters of different kinds must all match; values within one list are alternatives.
    ``items`` keeps the first N distinct items, in file order, among the series the lists select.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"M5 folder {folder} does not exist; pass the folder holding calendar.csv, "
                        "sell_prices.csv and sales_train_evaluation.csv")
    wanted = _wanted(states=states, stores=stores, categories=categories, departments=departments)
    if items is not None and (isinstance(items, bool) or not isinstance(items, (int, np.integer)) or items < 1):
        raise DataError(f"items={items!r} must be a whole number >= 1 (or None for every item)")
    cal_path, price_path = resolve_m5_file(folder, "calendar"), resolve_m5_file(folder, "sell_prices")
    sales_path = _sales_file(folder)
    calendar = read_calendar(cal_path)
    series, sales, first_day = _read_sales(sales_path, calendar, wanted, items)
    rows = _read_prices(price_path, series)
    check.check_all_priced(price_path, series["id"], np.isin(np.arange(len(series)), rows["row"]))
    prices = daily_prices(rows, len(series), calendar, np.arange(first_day, first_day + sales.shape[1]))
    for col in SERIES_COLUMNS:
        series[col] = pd.Categorical(series[col])
    return M5Dataset(series, calendar, sales, prices, first_day)


def _wanted(**filters) -> dict[str, list[str]]:
    """The filters that were given, each as a list of strings (a lone string is one value)."""
    wanted = {}
    for arg, values in filters.items():
        if values is None:
            continue
        values = [values] if isinstance(values, str) else [str(v) for v in values]
        if not values:
            raise DataError(f"{arg}=[] selects nothing; pass None to keep every value or name some")
        wanted[arg] = values
    return wanted


def _sales_file(folder: Path) -> Path:
    """The evaluation sales file, else the validation one."""
    for stem in SALES_STEMS:
        if (folder / f"{stem}.csv").is_file() or (folder / f"{stem}.csv.gz").is_file():
            return resolve_m5_file(folder, stem)
    raise DataError(f"{folder} has no sales_train_evaluation.csv or sales_train_validation.csv (plain or .gz); "
                    "copy one of them there")


def read_calendar(path: Path) -> pd.DataFrame:
    """calendar.csv with an int ``day`` column and ``date`` as datetime, validated."""
    header = _read_header(path)
    check.check_columns(path, header, CALENDAR_COLUMNS)
    text = {c: "str" for c in ["date", "d", *EVENT_COLUMNS]}
    try:
        raw = pd.read_csv(path, dtype=text)
    except (ValueError, pd.errors.ParserError) as err:
        raise check.fail(path, f"could not be read as CSV ({_short(err)})", "fix the row it names") from None
    return check.validated_calendar(raw, path)


def _read_header(path: Path) -> list[str]:
    """The column names on a CSV file's first line."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rt", newline="", encoding="utf-8-sig") as f:
            line = f.readline()
    except (OSError, UnicodeDecodeError) as err:
        raise check.fail(path, f"could not be read ({_short(err)})", "replace it with a valid (gzipped) CSV") from None
    if not line.strip():
        raise check.fail(path, "the file is empty", "replace it with the M5 file")
    return next(csv.reader([line]))


def _batches(path: Path, types: dict, include: list[str] | None = None):
    """The file's record batches with the given column types."""
    convert = pacsv.ConvertOptions(column_types=types, include_columns=include, strings_can_be_null=False)
    yield from pacsv.open_csv(str(path), read_options=pacsv.ReadOptions(block_size=_BLOCK_BYTES),
                              convert_options=convert)


class _SeriesFilter:
    """Which rows of the sales file to keep, decided batch by batch in file order."""

    def __init__(self, wanted: dict[str, list[str]], items: int | None):
        self.wanted, self.items = wanted, items
        self.seen = {col: set() for col, _ in check.FILTER_COLUMNS.values()}
        self.kept_items: dict[str, None] = {}  # ordered set of the first N items

    def mask(self, batch: pa.RecordBatch) -> np.ndarray:
        """True for the batch's rows in the subset."""
        keep = np.ones(batch.num_rows, dtype=bool)
        for arg, values in self.wanted.items():
            col = batch.column(check.FILTER_COLUMNS[arg][0])
            self.seen[check.FILTER_COLUMNS[arg][0]].update(pc.unique(col).to_pylist())
            keep &= pc.is_in(col, value_set=pa.array(values, pa.string())).to_numpy(zero_copy_only=False)
        if self.items is not None:
            item = batch.column("item_id").to_numpy(zero_copy_only=False)
            for new in pd.unique(item[keep])[: max(self.items - len(self.kept_items), 0)]:
                self.kept_items.setdefault(new)
            keep &= pd.Series(item).isin(list(self.kept_items)).to_numpy()
        return keep


def _read_sales(path: Path, calendar: pd.DataFrame, wanted: dict, items: int | None):
    """(series table as strings, sales array, first day) of the subset's rows of a wide sales file."""
    header = _read_header(path)
    check.check_columns(path, header, SERIES_COLUMNS)
    days = check.sales_days(path, header)
    check.check_days_in_calendar(path, days, calendar)
    day_cols = [c for c in header if c not in SERIES_COLUMNS]
    types = {c: pa.string() for c in SERIES_COLUMNS} | {c: pa.int32() for c in day_cols}
    keep = _SeriesFilter(wanted, items)
    try:
        batches = [b.filter(pa.array(keep.mask(b))) for b in _batches(path, types)]
    except pa.ArrowInvalid as err:
        raise _sales_read_error(path, header, day_cols, err) from None
    check.check_filter(path, wanted, keep.seen, sum(b.num_rows for b in batches))
    table = pa.Table.from_batches(batches).combine_chunks()
    series = pd.DataFrame({c: table.column(c).to_pylist() for c in SERIES_COLUMNS}, dtype="str")
    check.check_series(path, series)
    sales = _sales_matrix(path, table, day_cols, series["id"])
    check.check_sales_values(path, sales, series["id"].to_numpy(), days)
    return series, sales, int(days[0])


def _sales_matrix(path: Path, table: pa.Table, day_cols: list[str], ids: pd.Series) -> np.ndarray:
    """The day columns as a C-ordered (series, days) int array; DataError on an empty cell."""
    # int16 halves memory against int32 (the real maximum is in the hundreds); chosen before copying,
    # and only when no value is negative, so that a bad value reaches its error message unwrapped
    span = [pc.min_max(table.column(c)).as_py() for c in day_cols]
    small = all(s["min"] is None or 0 <= s["min"] and s["max"] <= np.iinfo(np.int16).max for s in span)
    by_day = np.empty((len(day_cols), table.num_rows), dtype=np.int16 if small else np.int32)
    for j, name in enumerate(day_cols):  # each day's column is contiguous in by_day
        col = table.column(name)
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise check.missing_sales_error(path, ids.iloc[row], name)
        by_day[j] = col.to_numpy()
    return np.ascontiguousarray(by_day.T)


def _sales_read_error(path: Path, header: list[str], day_cols: list[str], err: pa.ArrowInvalid) -> DataError:
    """The DataError for a sales file pyarrow refused: the first bad cell if there is one."""
    try:
        for batch in _batches(path, {c: pa.string() for c in header}):
            for name in day_cols:
                ok = pc.fill_null(pc.match_substring_regex(batch.column(name), r"^[0-9]{1,9}$"), False)
                bad = np.flatnonzero(~ok.to_numpy(zero_copy_only=False))
                if bad.size:
                    value, sid = batch.column(name)[bad[0]].as_py(), batch.column("id")[bad[0]].as_py()
                    if value == "":
                        return check.missing_sales_error(path, sid, name)
                    return check.bad_sales_error(path, sid, name, value)
    except pa.ArrowInvalid as err2:
        err = err2
    return check.fail(path, f"could not be read as CSV ({_short(err, header)})",
                      "each row needs one value per header column")


def _short(err: Exception, header: list[str] | None = None) -> str:
    """An error message cut to one readable line, with pyarrow's column numbers turned into names."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if header:
        text = re.sub(r"column #(\d+)", lambda m: f"column {header[int(m.group(1))]}", text)
    return text if len(text) <= 200 else text[:200] + "..."


def _read_prices(path: Path, series: pd.DataFrame) -> pd.DataFrame:
    """The series' price rows as ``row`` (series index), ``wm_yr_wk``, ``sell_price``, validated."""
    header = _read_header(path)
    check.check_columns(path, header, PRICE_COLUMNS)
    pairs = pa.array(series["store_id"] + _SEP + series["item_id"], pa.string())
    try:
        kept = [_priced_rows(b, pairs) for b in _batches(path, _PRICE_TYPES, PRICE_COLUMNS)]
    except pa.ArrowInvalid as err:
        raise check.fail(path, f"could not be read ({_short(err, header)})",
                         "wm_yr_wk must be a whole week number and sell_price a number") from None
    rows = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(
        {"row": np.array([], np.int64), "wm_yr_wk": np.array([], np.int32), "sell_price": np.array([], float)})
    check.check_price_rows(path, rows, series)
    return rows


def _priced_rows(batch: pa.RecordBatch, pairs: pa.Array) -> pd.DataFrame:
    """The batch's rows whose store/item is one of pairs, with ``row`` = that pair's position."""
    pair = pc.binary_join_element_wise(batch.column("store_id"), batch.column("item_id"), _SEP)
    row = pc.index_in(pair, value_set=pairs)  # one hash lookup per row; null when not in the subset
    hit = pc.is_valid(row)
    return pd.DataFrame({"row": pc.filter(row, hit).to_numpy().astype(np.int64),
                         "wm_yr_wk": pc.filter(batch.column("wm_yr_wk"), hit).to_numpy(zero_copy_only=False),
                         "sell_price": pc.filter(batch.column("sell_price"), hit).to_numpy(zero_copy_only=False)})


def daily_prices(rows: pd.DataFrame, n_series: int, calendar: pd.DataFrame, days: np.ndarray) -> np.ndarray:
    """Daily float32 prices (series x days) from weekly price rows, carried forward, never back.

    ``rows`` has ``row`` (series index), ``wm_yr_wk`` and ``sell_price``, one row per series and week.
    """
    weeks = pd.Index(pd.unique(calendar["wm_yr_wk"]))
    col = weeks.get_indexer(rows["wm_yr_wk"])
    on = col >= 0  # rows for weeks the calendar does not know cannot be placed on a day
    weekly = np.full((n_series, len(weeks)), np.nan, dtype=np.float32)
    weekly[rows["row"].to_numpy()[on], col[on]] = rows["sell_price"].to_numpy(np.float32)[on]
    # forward fill along weeks: each cell takes the latest priced week at or before it
    last = np.where(np.isnan(weekly), 0, np.arange(len(weeks)))
    np.maximum.accumulate(last, axis=1, out=last)
    weekly = np.take_along_axis(weekly, last, axis=1)
    day_weeks = calendar["wm_yr_wk"].to_numpy()[np.asarray(days) - int(calendar["day"].iloc[0])]
    return weekly[:, weeks.get_indexer(day_weeks)]


def m5_file_tables(dataset: M5Dataset) -> dict[str, pa.Table]:
    """The three M5 files of a data set as tables, keyed by file stem, in the real files' layout."""
    check.check_dataset(dataset)
    return {"calendar": _calendar_table(dataset.calendar), "sell_prices": _price_table(dataset),
            "sales_train_evaluation": _sales_table(dataset)}


def _calendar_table(cal: pd.DataFrame) -> pa.Table:
    """calendar.csv's columns in their real order: dates as YYYY-MM-DD, '' for no event."""
    cols = {"date": pd.to_datetime(cal["date"]).dt.strftime("%Y-%m-%d"), "d": "d_" + cal["day"].astype(str)}
    for c in ["weekday", *EVENT_COLUMNS]:
        cols[c] = cal[c].astype(object).where(cal[c].notna(), "").astype(str)
    arrays = [pa.array(np.asarray(cols[c], dtype=object), pa.string()) if c in cols
              else pa.array(cal[c].to_numpy(np.int64)) for c in CALENDAR_COLUMNS]
    return pa.table(arrays, names=CALENDAR_COLUMNS)


def _price_table(ds: M5Dataset) -> pa.Table:
    """One row per store/item/week whose price is known, the week's first price in the data set."""
    week_of_day = ds.calendar.set_index("day").loc[ds.days(), "wm_yr_wk"].to_numpy()
    weeks, first = np.unique(week_of_day, return_index=True)
    weekly = ds.prices[:, first]
    row, col = np.nonzero(~np.isnan(weekly))
    table = pd.DataFrame({
        "store_id": ds.series["store_id"].astype(str).to_numpy()[row],
        "item_id": ds.series["item_id"].astype(str).to_numpy()[row],
        "wm_yr_wk": weeks[col].astype(np.int64),
        "sell_price": weekly[row, col],
    }).drop_duplicates(["store_id", "item_id", "wm_yr_wk"]).sort_values(["store_id", "item_id", "wm_yr_wk"])
    return pa.Table.from_pandas(table, preserve_index=False)


def _sales_table(ds: M5Dataset) -> pa.Table:
    """The wide sales table: id columns, then one column per day."""
    by_day = np.ascontiguousarray(ds.sales.T)
    arrays = [pa.array(np.asarray(ds.series[c].astype(str), dtype=object), pa.string()) for c in SERIES_COLUMNS]
    arrays += [pa.array(by_day[j]) for j in range(by_day.shape[0])]
    return pa.table(arrays, names=SERIES_COLUMNS + [day_label(d) for d in ds.days()])


def write_m5_files(dataset: M5Dataset, out_dir: str | Path, *, compress: bool = False) -> dict[str, Path]:
    """Write calendar, sell_prices and sales_train_evaluation (.csv or .csv.gz), each atomically."""
    out_dir = Path(out_dir)
    tables = m5_file_tables(dataset)
    suffix, other = (".csv.gz", ".csv") if compress else (".csv", ".csv.gz")
    for stem in tables:
        if (out_dir / f"{stem}{other}").exists():
            raise DataError(f"{out_dir} already holds {stem}{other}; writing {stem}{suffix} beside it would leave "
                            f"load_m5 two candidates: remove it or write with compress={not compress}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {stem: out_dir / f"{stem}{suffix}" for stem in tables}
    for stem, table in tables.items():
        _write_atomic(paths[stem], table, compress)
    return paths


def _write_atomic(path: Path, table: pa.Table, compress: bool) -> None:
    """Write a table as CSV (gzipped if compress) to a temporary file beside path, then move it into place."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "xb") as raw, (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
                                          if compress else contextlib.nullcontext(raw)) as out:
                # pyarrow quotes header names, so the header is written by hand as the real files have it
                out.write((",".join(table.column_names) + "\n").encode())
                pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowInvalid as err:
        raise DataError(f"{path.name}: a value cannot be written unquoted ({_short(err)}); "
                        "M5 files hold no commas, quotes or line breaks in values") from None
