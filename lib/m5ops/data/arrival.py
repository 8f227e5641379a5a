"""The daily arrival of new data: reveal the next held-back real day, else simulate it.

After the day is stored, its features are built from the days just before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from m5ops.atomic import atomic_path
from m5ops.data.calendar import extend_calendar
from m5ops.data.feature_store import FeatureStore
from m5ops.data.schema import M5Dataset, day_date, day_label
from m5ops.data.simulate import LOOKBACK_DAYS, simulate_next_day
from m5ops.data.store import DayStore
from m5ops.workspace import Workspace


class Holdback:
    """Real days held back at ``init``, revealed one per arrival (long Parquet: day, series, sales, price)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def write(self, data: M5Dataset) -> None:
        """Keep the days of ``data`` for later arrival."""
        n, width = data.sales.shape
        with atomic_path(self.path) as tmp:
            pq.write_table(pa.table({
                "day": np.repeat(np.arange(data.first_day, data.last_day + 1, dtype=np.int32), n),
                "series": np.tile(np.arange(n, dtype=np.int32), width),
                "sales": data.sales.T.reshape(-1).astype(np.uint16),
                "sell_price": data.prices.T.reshape(-1).astype(np.float32),
            }), tmp)

    def days(self) -> tuple[int, int] | None:
        """The first and last held-back day, or None when nothing was held back."""
        if not self.path.is_file():
            return None
        column = pq.read_table(self.path, columns=["day"]).column("day")
        return (int(pc.min(column).as_py()), int(pc.max(column).as_py())) if len(column) else None

    def day(self, day: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Sales and prices of one held-back day, or None if it was not held back."""
        if not self.path.is_file():
            return None
        table = pq.read_table(self.path, filters=[("day", "=", day)]).sort_by("series")
        if table.num_rows == 0:
            return None
        return table.column("sales").to_numpy(), table.column("sell_price").to_numpy(zero_copy_only=False)

    def remaining_after(self, today: int) -> int:
        """How many held-back real days are still to come after ``today``."""
        span = self.days()
        return 0 if span is None else max(0, span[1] - max(today, span[0] - 1))


@dataclass
class Arrival:
    """What one arrival added."""

    day: int
    source: str  # "replay" or "simulated"
    sales: np.ndarray
    prices: np.ndarray
    factors: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def date(self) -> pd.Timestamp:
        return day_date(self.day)

    def summary(self) -> dict:
        """One line of figures for logs and the notebook."""
        return {"day": self.day, "d": day_label(self.day), "date": str(self.date.date()),
                "source": self.source, "total_sales": int(self.sales.sum()),
                "series_selling": int((self.sales > 0).sum()), "series": int(len(self.sales))}


def calendar_through(store: DayStore, day: int) -> pd.DataFrame:
    """The base calendar, extended by the calendar's rules through ``day``, indexed by day."""
    calendar = extend_calendar(store.base_calendar(), day)
    return calendar.set_index(calendar["day"].astype(int), drop=False)


def arrive_next_day(workspace: Workspace, seed: int | None = None) -> Arrival:
    """Append the day after today to the store (real if held back, else simulated), then its features."""
    store, features = DayStore(workspace.data_dir), FeatureStore(workspace.features_dir)
    config = workspace.config()
    day = store.last_day() + 1
    calendar = calendar_through(store, day)
    real = Holdback(workspace.holdback_path).day(day)
    if real is not None:
        arrival = Arrival(day, "replay", real[0], real[1])
    else:
        first = max(store.first_day(), day - LOOKBACK_DAYS)
        sales, prices = store.read_matrix(first, day - 1)
        simulated = simulate_next_day(sales, prices, calendar.loc[first:day - 1], calendar.loc[day],
                                      store.series(), config.seed if seed is None else seed)
        arrival = Arrival(day, "simulated", simulated.sales, simulated.prices, simulated.factors)
    store.append_day(day, arrival.sales, arrival.prices)
    features.build_day(store, day, calendar)
    return arrival


def ensure_features(workspace: Workspace) -> list[int]:
    """Build features of stored days that lack them (after a crash between store and features)."""
    store, features = DayStore(workspace.data_dir), FeatureStore(workspace.features_dir)
    built = set(features.stored_days())
    missing = [d for d in store.stored_days() if d not in built]
    if missing:
        calendar = calendar_through(store, missing[-1])
        for day in missing:
            features.build_day(store, day, calendar)
    return missing
