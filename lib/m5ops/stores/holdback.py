"""The hold-back record: real days kept back at ``init`` and revealed one per arrival."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from m5ops.data.schema import M5Dataset
from m5ops.stores.atomic import atomic_path


def held_back_left(span: tuple[int, int] | None, today: int) -> int:
    """How many held-back real days of ``span`` (first, last) are still to come after ``today``."""
    return 0 if span is None else max(0, span[1] - max(today, span[0] - 1))


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
        return held_back_left(self.days(), today)
