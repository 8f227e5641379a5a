"""Reading and writing M5-format files: the real slice, subsets, carried-forward prices, bad input, round trips."""
from __future__ import annotations

import csv
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m5ops.data.m5files import load_m5, resolve_m5_file, write_m5_files
from m5ops.data.schema import CALENDAR_COLUMNS, SERIES_COLUMNS, M5Dataset, day_date, day_label
from m5ops.errors import DataError

# content sha256 of the real sales_train_evaluation.csv.gz, from the slice's PROVENANCE.md
REAL_SALES_SHA256 = "d504da42420878634081f0ad413a7324749e22bc438e86a63b2e21d92cb186ca"
TINY_IDS = ["HOBBIES_1_001_CA_1_evaluation", "FOODS_1_001_CA_1_evaluation",
            "FOODS_1_001_CA_2_evaluation", "HOUSEHOLD_2_010_TX_1_evaluation"]


# ---- a tiny hand-made data set: 4 series, days 8..28 of a 35-day calendar ----

def tiny_dataset() -> M5Dataset:
    """Four series over days 8..28 (Walmart weeks 11102..11104), prices constant within each week."""
    days = np.arange(1, 36)
    dates = day_date(days)
    events = pd.Series([None] * len(days), dtype=object)
    calendar = pd.DataFrame({
        "date": dates, "wm_yr_wk": 11101 + (days - 1) // 7, "weekday": dates.day_name(), "wday": (days - 1) % 7 + 1,
        "month": dates.month, "year": dates.year, "d": [day_label(d) for d in days],
        "event_name_1": events.where(days != 9, "SuperBowl"), "event_type_1": events.where(days != 9, "Sporting"),
        "event_name_2": events, "event_type_2": events,
        "snap_CA": (dates.day <= 10).astype(int), "snap_TX": (dates.day % 2).astype(int), "snap_WI": 0, "day": days,
    })
    parts = [i.rsplit("_", 3) for i in TINY_IDS]  # item, state, store number, suffix
    series = pd.DataFrame({"id": TINY_IDS, "item_id": [p[0] for p in parts]})
    series["dept_id"] = series["item_id"].str.rsplit("_", n=1).str[0]
    series["cat_id"] = series["dept_id"].str.rsplit("_", n=1).str[0]
    series["store_id"] = [f"{p[1]}_{p[2]}" for p in parts]
    series["state_id"] = [p[1] for p in parts]
    sales = np.random.default_rng(5).integers(0, 9, size=(4, 21)).astype(np.int16)
    sales[0, 3] = 300  # needs more than int8
    weekly = np.array([[1.25, 1.25, 1.5], [np.nan, 3.0, 3.0], [0.99, 1.09, 1.09], [np.nan, np.nan, 4.5]], np.float32)
    return M5Dataset(series[SERIES_COLUMNS], calendar, sales, np.repeat(weekly, 7, axis=1), first_day=8)


@pytest.fixture()
def tiny_dir(tmp_path) -> Path:
    """The tiny data set written as plain M5 files in a fresh folder."""
    write_m5_files(tiny_dataset(), tmp_path / "m5")
    return tmp_path / "m5"


def read_rows(path: Path) -> list[list[str]]:
    """A CSV file's rows, header first."""
    with path.open(newline="") as f:
        return list(csv.reader(f))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    """Rows back to a CSV file."""
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def edit(stem: str, change):
    """A mutation that rewrites one file's rows with change(rows) -> rows."""
    def mutate(folder: Path) -> None:
        path = folder / f"{stem}.csv"
        write_rows(path, change(read_rows(path)))
    return mutate


def set_cell(stem: str, row: int, column: str, value: str):
    """A mutation that sets data row ``row`` (0-based) of a column to value."""
    def change(rows):
        rows[row + 1][rows[0].index(column)] = value
        return rows
    return edit(stem, change)


def drop_column(stem: str, column: str):
    """A mutation that removes a column."""
    def change(rows):
        j = rows[0].index(column)
        return [r[:j] + r[j + 1:] for r in rows]
    return edit(stem, change)


def rename_column(stem: str, old: str, new: str):
    """A mutation that renames a column in the header."""
    return edit(stem, lambda rows: [[new if c == old else c for c in rows[0]], *rows[1:]])


def drop_rows(stem: str, keep):
    """A mutation that keeps the header and the data rows where keep(row as dict) is true."""
    return edit(stem, lambda rows: [rows[0], *[r for r in rows[1:] if keep(dict(zip(rows[0], r)))]])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's name and bytes, to show that loading wrote nothing."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def loaded_price(ds: M5Dataset, series_id: str, day: int) -> float:
    """The loaded price of a series on a day."""
    row = list(ds.series["id"].astype(str)).index(series_id)
    return float(ds.prices[row, day - ds.first_day])


# ---- the real slice ----

@pytest.fixture(scope="module")
def real(m5_dir) -> M5Dataset:
    """The whole real slice, loaded once."""
    return load_m5(m5_dir)


@pytest.fixture(scope="module")
def raw_sales(m5_dir) -> pd.DataFrame:
    """The real sales file as pandas reads it, for comparison."""
    return pd.read_csv(m5_dir / "sales_train_evaluation.csv.gz")


@pytest.mark.real_data
def test_real_slice_loads_290_series_by_1941_days(real):
    assert real.sales.shape == real.prices.shape == (290, 1941)
    assert (real.first_day, real.last_day) == (1, 1941)
    assert real.sales.dtype == np.int16 and real.prices.dtype == np.float32
    assert list(real.series.columns) == SERIES_COLUMNS
    assert all(isinstance(real.series[c].dtype, pd.CategoricalDtype) for c in SERIES_COLUMNS)
    assert list(real.calendar.columns) == [*CALENDAR_COLUMNS, "day"]
    assert real.calendar["day"].tolist() == list(range(1, 1970))
    assert real.calendar["date"].iloc[0] == pd.Timestamp("2011-01-29")
    assert real.calendar["date"].iloc[-1] == pd.Timestamp("2016-06-19")


@pytest.mark.real_data
def test_real_sales_and_series_equal_the_raw_file(real, raw_sales):
    pd.testing.assert_frame_equal(real.series.astype(str), raw_sales[SERIES_COLUMNS].astype(str))
    np.testing.assert_array_equal(real.sales, raw_sales.filter(like="d_").to_numpy())


@pytest.mark.real_data
@pytest.mark.parametrize("series_id, column", [
    ("FOODS_3_586_CA_3_evaluation", "d_1941"), ("FOODS_3_586_CA_3_evaluation", "d_1000"),
    ("HOBBIES_1_001_CA_1_evaluation", "d_1913"), ("FOODS_2_324_WI_1_evaluation", "d_1914"),
])
def test_real_cell_equals_the_raw_file(real, raw_sales, series_id, column):
    raw = raw_sales.set_index("id").loc[series_id, column]
    row = list(real.series["id"].astype(str)).index(series_id)
    assert real.sales[row, int(column[2:]) - 1] == raw


@pytest.mark.real_data
@pytest.mark.parametrize("kwargs", [
    {"states": ["TX"]}, {"stores": ["CA_1"]}, {"stores": "WI_3"}, {"categories": ["HOBBIES"]},
    {"departments": ["FOODS_3", "HOUSEHOLD_2"]}, {"items": 3},
    {"states": ["CA", "WI"], "categories": ["FOODS"], "items": 2},
], ids=str)
def test_real_subset_selects_the_matching_series_in_file_order(m5_dir, raw_sales, kwargs):
    names = {"states": "state_id", "stores": "store_id", "categories": "cat_id", "departments": "dept_id"}
    keep = raw_sales
    for arg, col in names.items():
        if arg in kwargs:
            keep = keep[keep[col].isin(np.atleast_1d(kwargs[arg]))]
    if "items" in kwargs:
        keep = keep[keep["item_id"].isin(keep["item_id"].drop_duplicates().head(kwargs["items"]))]
    ds = load_m5(m5_dir, **kwargs)
    assert ds.series["id"].astype(str).tolist() == keep["id"].tolist()
    np.testing.assert_array_equal(ds.sales, keep.filter(like="d_").to_numpy())


@pytest.mark.real_data
def test_real_prices_are_weekly_prices_carried_forward(real, m5_dir, raw_sales):
    calendar = pd.read_csv(m5_dir / "calendar.csv", usecols=["d", "wm_yr_wk"])
    calendar["day"] = calendar["d"].str[2:].astype(int)
    prices = pd.read_csv(m5_dir / "sell_prices.csv.gz")
    grid = raw_sales[["store_id", "item_id"]].assign(row=np.arange(len(raw_sales)))
    grid = grid.merge(calendar[calendar["day"] <= 1941], how="cross")
    grid = grid.merge(prices, on=["store_id", "item_id", "wm_yr_wk"], how="left").sort_values(["row", "day"])
    expected = grid.groupby("row")["sell_price"].ffill().to_numpy(np.float32).reshape(290, 1941)
    np.testing.assert_array_equal(real.prices, expected)


@pytest.mark.real_data
def test_real_tiny_m5_series_carry_their_last_price_through_weeks_without_rows(real):
    # week 11613 is d_1912..d_1918; the 280 tiny_m5 series have no rows for 11614..11621 (d_1919 on)
    last = loaded_price(real, "FOODS_3_586_CA_3_evaluation", 1918)
    assert not np.isnan(last)
    assert {loaded_price(real, "FOODS_3_586_CA_3_evaluation", d) for d in range(1919, 1942)} == {last}


@pytest.mark.real_data
def test_real_price_is_nan_before_the_first_price_row(real):
    # CA_1 FOODS_1_033 is first priced (5.09) in week 11221, which starts on d_505 (2012-06-16)
    assert real.calendar.loc[real.calendar["wm_yr_wk"] == 11221, "day"].min() == 505
    assert np.isnan(loaded_price(real, "FOODS_1_033_CA_1_evaluation", 504))
    assert loaded_price(real, "FOODS_1_033_CA_1_evaluation", 505) == np.float32(5.09)


@pytest.mark.real_data
def test_real_slice_round_trips_and_rewrites_the_same_sales_and_calendar(real, m5_dir, tmp_path):
    paths = write_m5_files(real, tmp_path, compress=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())
    with gzip.open(paths["sales_train_evaluation"], "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == REAL_SALES_SHA256
    with gzip.open(paths["calendar"], "rb") as f:
        assert f.read() == (m5_dir / "calendar.csv").read_bytes()
    back = load_m5(tmp_path)
    pd.testing.assert_frame_equal(back.series, real.series)
    np.testing.assert_array_equal(back.sales, real.sales)
    np.testing.assert_array_equal(back.prices, real.prices)


# ---- write and load a hand-made data set ----

@pytest.mark.parametrize("compress", [False, True])
def test_tiny_dataset_round_trips(tmp_path, compress):
    ds = tiny_dataset()
    paths = write_m5_files(ds, tmp_path, compress=compress)
    assert set(paths) == {"calendar", "sell_prices", "sales_train_evaluation"}
    assert all(p.name.endswith(".csv.gz" if compress else ".csv") for p in paths.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())  # no temp files
    back = load_m5(tmp_path)
    pd.testing.assert_frame_equal(back.series.astype(str), ds.series.astype(str))
    assert back.first_day == 8 and back.sales.dtype == np.int16
    np.testing.assert_array_equal(back.sales, ds.sales)
    np.testing.assert_array_equal(back.prices, ds.prices)
    assert back.calendar["day"].tolist() == list(range(1, 36))
    assert (back.calendar["date"] == ds.calendar["date"]).all()
    assert back.calendar["event_name_1"].fillna("").tolist() == ds.calendar["event_name_1"].fillna("").tolist()


def test_written_files_have_the_real_layout(tiny_dir):
    calendar, prices, sales = (read_rows(tiny_dir / f"{s}.csv")
                               for s in ("calendar", "sell_prices", "sales_train_evaluation"))
    assert calendar[0] == CALENDAR_COLUMNS
    assert calendar[9] == ["2011-02-06", "11102", "Sunday", "2", "2", "2011", "d_9", "SuperBowl", "Sporting",
                           "", "", "1", "0", "0"]
    assert prices[0] == ["store_id", "item_id", "wm_yr_wk", "sell_price"]
    # one row per store/item/week from the first priced week on, sorted by store, item, week
    assert prices[1:] == sorted(prices[1:], key=lambda r: (r[0], r[1], int(r[2])))
    assert ["TX_1", "HOUSEHOLD_2_010", "11104", "4.5"] in prices and len(prices) - 1 == 3 + 2 + 3 + 1
    assert sales[0] == [*SERIES_COLUMNS, *[f"d_{d}" for d in range(8, 29)]]
    assert sales[1][:6] == ["HOBBIES_1_001_CA_1_evaluation", "HOBBIES_1_001", "HOBBIES_1", "HOBBIES", "CA_1", "CA"]


def test_price_week_without_a_row_takes_the_previous_weeks_price(tiny_dir):
    drop_rows("sell_prices", lambda r: not (r["item_id"] == "HOBBIES_1_001" and r["wm_yr_wk"] == "11103"))(tiny_dir)
    ds = load_m5(tiny_dir)
    assert [loaded_price(ds, TINY_IDS[0], d) for d in (14, 15, 21, 22)] == [1.25, 1.25, 1.25, 1.5]


def test_price_is_never_filled_from_the_future(tiny_dir):
    drop_rows("sell_prices", lambda r: not (r["item_id"] == "HOBBIES_1_001" and r["wm_yr_wk"] == "11102"))(tiny_dir)
    ds = load_m5(tiny_dir)
    assert np.isnan([loaded_price(ds, TINY_IDS[0], d) for d in range(8, 15)]).all()
    assert loaded_price(ds, TINY_IDS[0], 15) == 1.25


def test_sales_too_big_for_int16_load_as_int32(tiny_dir):
    set_cell("sales_train_evaluation", 2, "d_20", "40000")(tiny_dir)
    ds = load_m5(tiny_dir)
    assert ds.sales.dtype == np.int32 and ds.sales[2, 20 - 8] == 40000


def test_sales_validation_file_is_read_when_there_is_no_evaluation_file(tiny_dir):
    (tiny_dir / "sales_train_evaluation.csv").rename(tiny_dir / "sales_train_validation.csv")
    assert load_m5(tiny_dir).n_series == 4
    assert resolve_m5_file(tiny_dir, "sales_train_validation").name == "sales_train_validation.csv"


def test_writing_beside_the_other_compression_is_refused(tiny_dir):
    with pytest.raises(DataError, match="already holds calendar.csv; .* compress=False"):
        write_m5_files(tiny_dataset(), tiny_dir, compress=True)
    assert not list(tiny_dir.glob("*.gz"))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tiny_dir):
    before = snapshot(tiny_dir)
    ds = tiny_dataset()
    ds.calendar.loc[8, "event_name_1"] = "Super, Bowl"
    with pytest.raises(DataError, match="calendar.csv: a value cannot be written unquoted"):
        write_m5_files(ds, tiny_dir)
    assert snapshot(tiny_dir) == before


def test_writing_a_data_set_whose_parts_disagree_is_refused(tmp_path):
    ds = tiny_dataset()
    ds.prices = ds.prices[:, :-1]
    with pytest.raises(DataError, match="must both be"):
        write_m5_files(ds, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- every bad input is a DataError that names the problem, and the folder stays as it was ----

def delete(name: str):
    """A mutation that removes a file."""
    return lambda folder: (folder / name).unlink()


def gzip_copy(name: str):
    """A mutation that adds a gzipped copy beside a plain file."""
    return lambda folder: (folder / f"{name}.gz").write_bytes(gzip.compress((folder / name).read_bytes()))


def swap_columns(stem: str, a: str, b: str):
    """A mutation that swaps two header labels (so the d_ columns go out of order)."""
    return edit(stem, lambda rows: [[{a: b, b: a}.get(c, c) for c in rows[0]], *rows[1:]])


def duplicate_row(stem: str, row: int):
    """A mutation that repeats data row ``row``."""
    return edit(stem, lambda rows: [*rows, rows[row + 1]])


def shift_dates(rows):
    """Move every calendar date one day later (off M5's day numbering)."""
    return [rows[0], *[[str((pd.Timestamp(r[0]) + pd.Timedelta(days=1)).date()), *r[1:]] for r in rows[1:]]]


BAD_INPUTS = [
    ("no calendar", delete("calendar.csv"), {}, "has no calendar.csv"),
    ("no prices", delete("sell_prices.csv"), {}, "has no sell_prices.csv"),
    ("no sales", delete("sales_train_evaluation.csv"), {}, "no sales_train_evaluation.csv or sales_train_validation"),
    ("plain and gz", gzip_copy("calendar.csv"), {}, "holds both calendar.csv and calendar.csv.gz"),
    ("empty file", lambda f: (f / "sell_prices.csv").write_text(""), {}, "sell_prices.csv: the file is empty"),
    ("header only", edit("sales_train_evaluation", lambda rows: rows[:1]), {}, "a header but no series rows"),
    ("no price column", drop_column("sell_prices", "sell_price"), {},
     "sell_prices.csv: column 'sell_price' is missing"),
    ("no dept column", drop_column("sales_train_evaluation", "dept_id"), {},
     "sales_train_evaluation.csv: column 'dept_id' is missing"),
    ("no calendar column", drop_column("calendar", "wm_yr_wk"), {}, "calendar.csv: column 'wm_yr_wk' is missing"),
    ("negative sales", set_cell("sales_train_evaluation", 1, "d_10", "-3"), {},
     "negative sales value '-3' for FOODS_1_001_CA_1_evaluation on d_10"),
    ("very negative sales", set_cell("sales_train_evaluation", 1, "d_11", "-40000"), {},
     "negative sales value '-40000' for FOODS_1_001_CA_1_evaluation on d_11"),
    ("fractional sales", set_cell("sales_train_evaluation", 2, "d_12", "1.5"), {},
     "non-integer sales value '1.5' for FOODS_1_001_CA_2_evaluation on d_12"),
    ("text sales", set_cell("sales_train_evaluation", 0, "d_28", "x"), {},
     "non-integer sales value 'x' for HOBBIES_1_001_CA_1_evaluation on d_28"),
    ("empty sales", set_cell("sales_train_evaluation", 3, "d_8", ""), {},
     "missing sales value for HOUSEHOLD_2_010_TX_1_evaluation on d_8"),
    ("short row", edit("sales_train_evaluation", lambda rows: [*rows[:2], rows[2][:-1], *rows[3:]]), {},
     "could not be read as CSV"),
    ("day past calendar", edit("calendar", lambda rows: rows[:-8]), {},
     "day column d_28 is outside the calendar (d_1..d_27)"),
    ("gap in days", drop_column("sales_train_evaluation", "d_12"), {}, "d_13 follows d_11 (d_12 is missing)"),
    ("days out of order", swap_columns("sales_train_evaluation", "d_12", "d_13"), {},
     "d_13 follows d_11 (out of order)"),
    ("bad day label", rename_column("sales_train_evaluation", "d_28", "day_28"), {},
     "column 'day_28' is neither an id column nor a day label"),
    ("duplicate day", rename_column("sales_train_evaluation", "d_28", "d_27"), {}, "column 'd_27' appears 2 times"),
    ("series without prices", drop_rows("sell_prices", lambda r: r["store_id"] != "TX_1"), {},
     "1 series have no price rows for their store/item: HOUSEHOLD_2_010_TX_1_evaluation"),
    ("duplicate price", duplicate_row("sell_prices", 0), {}, "have more than one row, e.g. CA_1 FOODS_1_001 week"),
    ("zero price", set_cell("sell_prices", 0, "sell_price", "0"), {}, "non-positive sell_price"),
    ("empty price", set_cell("sell_prices", 2, "sell_price", ""), {}, "e.g. CA_1 HOBBIES_1_001 week 11102: nan"),
    ("text week", set_cell("sell_prices", 0, "wm_yr_wk", "week1"), {}, "column wm_yr_wk"),
    ("duplicate id", duplicate_row("sales_train_evaluation", 0), {}, "1 ids appear more than once: HOBBIES_1_001_CA_1"),
    ("wrong department", set_cell("sales_train_evaluation", 1, "dept_id", "FOODS_2"), {},
     "dept_id disagrees with item_id/store_id for 1 series: FOODS_1_001_CA_1_evaluation"),
    ("id of another store", set_cell("sales_train_evaluation", 1, "id", "FOODS_1_001_CA_3_evaluation"), {},
     "id disagrees"),
    ("calendar date gap", set_cell("calendar", 4, "date", "2011-02-03"), {},
     "dates are not consecutive: d_5 is 2011-02-03 after 2011-02-01"),
    ("calendar bad date", set_cell("calendar", 4, "date", "02/02/2011"), {}, "'02/02/2011' on d_5 is not a YYYY-MM-DD"),
    ("calendar bad label", set_cell("calendar", 4, "d", "day5"), {}, "bad d label in column d"),
    ("calendar skipped label", set_cell("calendar", 4, "d", "d_6"), {},
     "d labels are not consecutive: d_6 follows d_4"),
    ("calendar off M5 numbering", edit("calendar", shift_dates), {},
     "d_1 is dated 2011-01-30 but M5 puts it on 2011-01-29"),
    ("calendar week mid-week", set_cell("calendar", 4, "wm_yr_wk", "11102"), {}, "wm_yr_wk changes to 11102 on d_5"),
    ("calendar text snap", set_cell("calendar", 2, "snap_CA", "yes"), {}, "column snap_CA holds 'yes' on d_3"),
    ("unknown store", lambda f: None, {"stores": ["CA_9"]},
     "unknown stores CA_9 in stores=['CA_9']; valid stores: CA_1"),
    ("unknown state", lambda f: None, {"states": ["NY"]}, "valid states: CA, TX, WI"),
    ("unknown category", lambda f: None, {"categories": ["TOYS"]}, "valid categories: FOODS, HOBBIES, HOUSEHOLD"),
    ("unknown department", lambda f: None, {"departments": ["FOODS_9"]}, "valid departments: FOODS_1, FOODS_2"),
    ("subset selects nothing", lambda f: None, {"stores": ["TX_1"], "categories": ["FOODS"]},
     "selects no series (the file has stores CA_1, CA_2, TX_1; categories FOODS, HOBBIES, HOUSEHOLD)"),
    ("store not in file", lambda f: None, {"stores": ["WI_1"]}, "stores=['WI_1'] selects no series"),
    ("empty filter", lambda f: None, {"states": []}, "states=[] selects nothing; pass None"),
    ("zero items", lambda f: None, {"items": 0}, "items=0 must be a whole number >= 1"),
]


@pytest.mark.parametrize("mutate, kwargs, words", [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_a_data_error_naming_the_problem_and_the_folder_is_unchanged(tiny_dir, mutate, kwargs, words):
    mutate(tiny_dir)
    before = snapshot(tiny_dir)
    with pytest.raises(DataError) as caught:
        load_m5(tiny_dir, **kwargs)
    assert words in str(caught.value)
    assert snapshot(tiny_dir) == before


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist; pass the folder holding calendar.csv"):
        load_m5(tmp_path / "nowhere")
