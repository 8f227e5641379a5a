"""Features stored per day beside the data: built in bulk at ``init``, then one day per arrival."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from m5ops.stores.atomic import atomic_path
from m5ops.data.features import (
    HISTORY_DAYS,
    attach_ids,
    calendar_features,
    compute_block,
    day_columns,
    day_frame,
)
from m5ops.data.schema import M5Dataset, day_label
from m5ops.data.store import DayStore
from m5ops.errors import DataError

_FEATURE_FILE = re.compile(r"^day=(\d{6})\.parquet$")
SERIES_CHUNK = 8192


class FeatureStore:
    """One Parquet file of feature rows per day under ``<workspace>/features``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def stored_days(self) -> list[int]:
        """Days whose features are stored, ascending."""
        if not self.root.is_dir():
            return []
        found = (_FEATURE_FILE.match(name) for name in os.listdir(self.root))
        return sorted(int(m.group(1)) for m in found if m)

    def unreadable_days(self, days: list[int]) -> dict[int, str]:
        """Of ``days``, those whose feature file cannot be read, with why."""
        found = {}
        for day in days:
            try:
                pq.read_metadata(self.day_path(day))
            except (OSError, pa.ArrowException) as exc:
                found[day] = f"unreadable ({type(exc).__name__}: {exc})"
        return found

    def day_path(self, day: int) -> Path:
        """The file of day ``day``'s features."""
        return self.root / f"day={day:06d}.parquet"

    def remove_day(self, day: int) -> None:
        """Delete day ``day``'s features (FileNotFoundError if there are none)."""
        self.day_path(day).unlink()

    def write_day(self, frame: pd.DataFrame) -> Path:
        """Store one day's feature rows atomically (a rebuilt day replaces the old file)."""
        return self._write_table(int(frame["day"].iloc[0]), pa.Table.from_pandas(frame, preserve_index=False))

    def _write_table(self, day: int, table: pa.Table) -> Path:
        """``write_day`` for rows already in Arrow (build_all skips pandas: ~10 ms a day less)."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.day_path(day)
        with atomic_path(final) as tmp:
            pq.write_table(table, tmp)
        return final

    def read(self, start: int, end: int, series: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
        """Feature rows of days start..end with the series' categorical ids attached."""
        if end < start:
            raise DataError(f"cannot read features of days {start}..{end}: the last day is before the first")
        paths = [self.root / f"day={day:06d}.parquet" for day in range(start, end + 1)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DataError(
                f"features of {len(missing)} day(s) in {day_label(start)}..{day_label(end)} are not built "
                f"(first missing: {missing[0].name}); run 'm5ops tick' to build them"
            )
        names = (pq.read_schema(paths[0]).names if columns is None
                 else sorted(set(columns) | {"series", "day"}))
        names = [name for name in names if name != "price_max"]  # the next day's build input, not a feature
        frame = pd.DataFrame(_read_into_columns(paths, names), copy=False)
        return attach_ids(frame, series)

    def to_dask(self, start: int, end: int, series: pd.DataFrame, columns: list[str] | None = None):
        """Days start..end as a ``dask.dataframe``, one partition per day file, ids attached (read on the workers).

        Every partition's ids share the categories of ``series``, so the categories are known
        to Dask (and to LightGBM) without a pass over the data. The files must be on storage
        the workers see.
        """
        import dask.dataframe as dd  # the [dask] extra

        paths = [self.day_path(day) for day in range(start, end + 1)]
        missing = [p for p in paths if not p.is_file()]
        if end < start or missing:
            raise DataError(f"cannot read features of days {start}..{end} as a Dask frame: "
                            f"{len(missing) if missing else 'no'} day file(s) missing; run 'm5ops tick' to build them")
        names = (pq.read_schema(paths[0]).names if columns is None else sorted(set(columns) | {"series", "day"}))
        names = [name for name in names if name != "price_max"]
        meta = _read_day_with_ids(paths[0], names, series).iloc[:0]
        return dd.from_map(_read_day_with_ids, [str(p) for p in paths], names=names, series=series, meta=meta,
                           enforce_metadata=False)

    def price_max(self, day: int) -> np.ndarray | None:
        """The running price maximum stored with a day's features, if that day is built."""
        path = self.root / f"day={day:06d}.parquet"
        if not path.is_file():
            return None
        with pq.ParquetFile(path) as file:
            return file.read(columns=["price_max"]).column("price_max").to_numpy(zero_copy_only=False)

    def build_all(self, data: M5Dataset, calendar: pd.DataFrame, progress=None) -> None:
        """Features of every day of a data set, computed in chunks of series to bound memory."""
        cal = calendar_features(calendar)
        days = range(data.first_day, data.last_day + 1)
        blocks = [
            (rows, compute_block(data.sales[rows], data.prices[rows], data.first_day, data.first_day))
            for rows in _chunks(data.n_series, SERIES_CHUNK)
        ]
        states = data.series["state_id"]
        for j, day in enumerate(progress(days) if progress else days):
            # the rows of day_frame, straight to Arrow: no DataFrame per chunk, no concat
            parts = [day_columns(block, j, cal, states.iloc[rows]) for rows, block in blocks]
            columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
            columns["series"] = np.arange(data.n_series, dtype=np.int32)
            self._write_table(day, pa.table(columns))

    def build_day(self, store: DayStore, day: int, calendar: pd.DataFrame) -> pd.DataFrame:
        """Features of one stored day from the ``HISTORY_DAYS`` before it: cost independent of history."""
        store_first = store.first_day()
        first = max(store_first, day - HISTORY_DAYS)
        sales, prices = store.read_matrix(first, day)
        previous_max = self.price_max(first - 1)
        if first > store_first and previous_max is None:
            raise DataError(f"features of {day_label(first - 1)} are missing; rebuild features with 'm5ops init --force'")
        block = compute_block(sales, prices, first, day, previous_max)
        today = calendar[calendar["day"].to_numpy().astype(int) == day]  # not the whole calendar: it grows
        frame = day_frame(block, 0, calendar_features(today), store.series()["state_id"])
        self.write_day(frame)
        return frame


def _read_day_with_ids(path, names: list[str], series: pd.DataFrame) -> pd.DataFrame:
    """One day file's columns ``names`` with the series' categorical ids (a partition of ``to_dask``)."""
    with pq.ParquetFile(path) as file:
        return attach_ids(file.read(columns=names).to_pandas(), series)


def _chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices covering range(n)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _num_rows(path: Path) -> int:
    with pq.ParquetFile(path) as file:
        return file.metadata.num_rows


def _read_into_columns(paths: list[Path], names: list[str]) -> dict[str, np.ndarray]:
    """The columns ``names`` of every file, one after another, each in one array made up front.

    A day's table is copied into its rows and dropped, so the peak is the frame plus one day: a
    pandas frame per day and their concatenation held it three times (3.5x the frame at 730 days,
    see bench/bench_feature_read.py).
    """
    ends = np.cumsum([_num_rows(path) for path in paths])
    columns: dict[str, np.ndarray] = {}
    for path, end, begin in zip(paths, ends, [0, *ends[:-1]]):
        with pq.ParquetFile(path) as file:  # no dataset layer: 2-3x faster per small file than pq.read_table
            table = file.read(columns=names)
        for name in names:
            values = table.column(name).to_numpy()
            if name not in columns:
                columns[name] = np.empty(ends[-1], dtype=values.dtype)
            elif values.dtype != columns[name].dtype:
                raise DataError(f"{path.name}: column {name} is {values.dtype}, other days' are"
                                f" {columns[name].dtype}; delete the file and run 'm5ops tick' to rebuild it")
            columns[name][begin:end] = values
    return columns
