"""The day-partitioned Parquet store: one file per day, appended atomically, read by day range.

Layout under ``<workspace>/data``::

    series.parquet            the series table (ids as categoricals), row i = series index i
    calendar.parquet          the base calendar (real or synthetic); later days follow its rules
    days/day=000123.parquet   long rows of one day: series (int32), sales (uint16), sell_price (float32)

A day file appears whole or not at all: it is written under a temporary name and published with
``os.link``, which also refuses a second copy of a day. Plain Parquet, so Dask or Spark can read
``days/`` as one partitioned table.
"""
from __future__ import annotations

import os
import re
from bisect import bisect_left
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from m5ops.stores.atomic import atomic_path, fsync_dir, remove_stale_temps
from m5ops.data.schema import SERIES_COLUMNS, M5Dataset, day_date, day_label
from m5ops.errors import DataError

_DAY_FILE = re.compile(r"^day=(\d{6})\.parquet$")
_MAX_UNITS = np.iinfo(np.uint16).max


class DayStore:
    """Reads and appends the days of one workspace's data."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.days_dir = self.root / "days"

    # -- writing -------------------------------------------------------------------------
    def create(self, series: pd.DataFrame, calendar: pd.DataFrame) -> None:
        """Lay out an empty store with its series table and base calendar."""
        self.days_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.root / "series.parquet") as tmp:
            series[SERIES_COLUMNS].to_parquet(tmp, index=False)
        with atomic_path(self.root / "calendar.parquet") as tmp:
            calendar.to_parquet(tmp, index=False)

    def append_day(self, day: int, sales: np.ndarray, prices: np.ndarray) -> Path:
        """Store day ``day`` (must be the day after the last one); whole or not at all."""
        last = self.last_day()
        if last is not None and day != last + 1:
            raise DataError(
                f"cannot append {day_label(day)}: the store ends at {day_label(last)}, "
                f"so the next day must be {day_label(last + 1)}"
            )
        table = self._day_table(sales, prices)
        final = self._day_path(day)
        try:
            with atomic_path(final, exclusive=True) as tmp:
                pq.write_table(table, tmp)
        except FileExistsError as exc:
            raise DataError(f"{day_label(day)} is already stored ({final}); a day is never stored twice") from exc
        return final

    def remove_last_day(self, day: int) -> None:
        """Take back day ``day``, which must be the last one (an arrival that failed after storing it)."""
        if day != self.last_day():
            raise DataError(f"cannot take back {day_label(day)}: only the last stored day"
                            f" ({day_label(self.last_day())}) can be taken back")
        self._day_path(day).unlink()
        fsync_dir(self.days_dir)

    def append_dataset(self, data: M5Dataset, progress=None) -> None:
        """Append every day of a data set in order (``progress`` wraps the day iterator)."""
        days = range(data.first_day, data.last_day + 1)
        for j, day in enumerate(progress(days) if progress else days):
            self.append_day(day, data.sales[:, j], data.prices[:, j])

    def _day_table(self, sales: np.ndarray, prices: np.ndarray) -> pa.Table:
        """Validate one day's columns and pack them in compact types."""
        n = self.n_series()
        sales = np.asarray(sales)
        if sales.shape != (n,) or np.shape(prices) != (n,):
            raise DataError(f"a day needs {n} sales and {n} prices, got {sales.shape} and {np.shape(prices)}")
        if np.isnan(sales.astype(float)).any() or (sales < 0).any() or (sales > _MAX_UNITS).any():
            raise DataError(f"sales must be whole numbers in 0..{_MAX_UNITS}; got min {sales.min()} max {sales.max()}")
        return pa.table({
            "series": pa.array(np.arange(n, dtype=np.int32)),
            "sales": pa.array(sales.astype(np.uint16)),
            "sell_price": pa.array(np.asarray(prices, dtype=np.float32)),
        })

    # -- reading -------------------------------------------------------------------------
    def stored_days(self) -> list[int]:
        """Every stored day number, ascending (temporary files are not days)."""
        if not self.days_dir.is_dir():
            return []
        found = (_DAY_FILE.match(name) for name in os.listdir(self.days_dir))
        return sorted(int(m.group(1)) for m in found if m)

    def first_day(self) -> int | None:
        span = self._span()
        return span[0] if span else None

    def last_day(self) -> int | None:
        span = self._span()
        return span[1] if span else None

    def _span(self) -> tuple[int, int] | None:
        """(first, last) stored day, or None: as ``stored_days``, without a Python step per day.

        An arrival asks for these several times, so they must stay cheap as the history grows.
        Day names have a fixed width, so sorted names are in day order and only the ends of
        the ``day=`` range are checked.
        """
        if not self.days_dir.is_dir():
            return None
        names = sorted(os.listdir(self.days_dir))
        candidates = names[bisect_left(names, "day="):bisect_left(names, "day>")]  # '>' follows '='
        first = next((m for m in map(_DAY_FILE.match, candidates) if m), None)
        last = next((m for m in map(_DAY_FILE.match, reversed(candidates)) if m), None)
        return (int(first.group(1)), int(last.group(1))) if first else None

    def missing_days(self) -> list[int]:
        """Days between the first and the last stored day that have no file (a gap in the store)."""
        span = self._span()
        if span is None:
            return []
        present = self.stored_days()
        if len(present) == span[1] - span[0] + 1:
            return []
        return sorted(set(range(span[0], span[1] + 1)) - set(present))

    def unreadable_days(self, days: list[int] | None = None) -> dict[int, str]:
        """Of ``days`` (default: all stored), those whose file cannot be read as a day, with why."""
        n = self.n_series()
        found = {}
        for day in self.stored_days() if days is None else days:
            try:
                rows = pq.read_metadata(self._day_path(day)).num_rows
            except (OSError, pa.ArrowException) as exc:
                found[day] = f"unreadable ({type(exc).__name__}: {exc})"
                continue
            if rows != n:
                found[day] = f"has {rows} rows, expected one per series ({n})"
        return found

    def require_whole(self, recent_days: int) -> None:
        """DataError naming the day if a day is missing, or unreadable among the last ``recent_days``.

        Checked before a tick appends anything: an arrival reads the recent days, and a gap
        anywhere breaks every window that spans it.
        """
        missing = self.missing_days()
        if missing:
            raise DataError(f"{day_label(missing[0])} is missing from the day store ({len(missing)} day(s) missing"
                            f" between {day_label(self.first_day())} and {day_label(self.last_day())}): restore it"
                            " from a backup or re-create the workspace ('m5ops init --force'); 'm5ops check' lists them")
        last = self.last_day()
        bad = self.unreadable_days(list(range(max(self.first_day(), last - recent_days + 1), last + 1)))
        if bad:
            day, why = next(iter(bad.items()))
            raise DataError(f"{day_label(day)} in the day store {why}: restore {self._day_path(day)} from a backup"
                            " or re-create the workspace ('m5ops init --force'); 'm5ops check' lists every problem")

    def series(self) -> pd.DataFrame:
        """The series table; row i is series index i."""
        return pd.read_parquet(self.root / "series.parquet")

    def n_series(self) -> int:
        return pq.ParquetFile(self.root / "series.parquet").metadata.num_rows

    def base_calendar(self) -> pd.DataFrame:
        return pd.read_parquet(self.root / "calendar.parquet")

    def read_matrix(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Sales (float32) and prices (float32) of days start..end as (n_series, n_days) arrays."""
        self._check_range(start, end)
        n, width = self.n_series(), end - start + 1
        sales = np.empty((n, width), dtype=np.float32)
        prices = np.empty((n, width), dtype=np.float32)
        for j, day in enumerate(range(start, end + 1)):
            # ParquetFile.read: several times faster per small file than pq.read_table (no dataset layer)
            with pq.ParquetFile(self._day_path(day)) as file:
                table = file.read(columns=["sales", "sell_price"])
            sales[:, j] = table.column("sales").to_numpy()
            prices[:, j] = table.column("sell_price").to_numpy(zero_copy_only=False)
        return sales, prices

    def read_long(self, start: int, end: int) -> pd.DataFrame:
        """The long table of days start..end with the series' ids, day label and date."""
        self._check_range(start, end)
        series = self.series()
        frames = []
        for day in range(start, end + 1):
            frame = pq.read_table(self._day_path(day)).to_pandas()
            frame["d"] = day_label(day)
            frame["date"] = day_date(day)
            frames.append(frame)
        long = pd.concat(frames, ignore_index=True)
        long = series.iloc[long["series"].to_numpy()].reset_index(drop=True).join(long.drop(columns="series"))
        return long[[*SERIES_COLUMNS, "d", "date", "sales", "sell_price"]]

    def _check_range(self, start: int, end: int) -> None:
        """A DataError unless start..end lies inside the stored days."""
        span = self._span()
        if span is None:
            raise DataError(f"the store at {self.root} holds no days yet: run 'm5ops init'")
        first, last = span
        if start > end or start < first or end > last:
            raise DataError(
                f"days {day_label(start)}..{day_label(end)} are not all stored; "
                f"the store holds {day_label(first)}..{day_label(last)}"
            )

    def _day_path(self, day: int) -> Path:
        return self.days_dir / f"day={day:06d}.parquet"

    def clean_temporaries(self) -> int:
        """Remove temporary files a crashed writer left behind; returns how many."""
        return len(remove_stale_temps(self.days_dir, older_than_s=0))
