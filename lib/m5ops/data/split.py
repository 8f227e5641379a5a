"""The train/test split: a view by day, never a copy of the data."""
from __future__ import annotations

from dataclasses import dataclass

from m5ops.data.schema import HORIZON, day_date, day_label
from m5ops.errors import DataError


@dataclass(frozen=True)
class Split:
    """The last ``test_days`` stored days are test; the days before them are train."""

    first_day: int
    today: int
    test_days: int = HORIZON

    def __post_init__(self):
        if self.test_days < 1:
            raise DataError(f"test_days must be at least 1, got {self.test_days}")
        if self.train_end < self.first_day:
            raise DataError(
                f"only {self.today - self.first_day + 1} days are stored; a test window of "
                f"{self.test_days} days leaves none to train on: lower test_days or let more days arrive"
            )

    @property
    def train_end(self) -> int:
        """The training cutoff: the last day before the test window."""
        return self.today - self.test_days

    @property
    def test_start(self) -> int:
        return self.today - self.test_days + 1

    def train_range(self, max_days: int | None = None) -> tuple[int, int]:
        """First and last train day, optionally only the last ``max_days`` of them."""
        start = self.first_day if max_days is None else max(self.first_day, self.train_end - max_days + 1)
        return start, self.train_end

    def test_range(self) -> tuple[int, int]:
        return self.test_start, self.today

    def describe(self) -> dict:
        """Labels and dates of both sides, for logs and notebooks."""
        return {
            "train": f"{day_label(self.first_day)}..{day_label(self.train_end)}",
            "test": f"{day_label(self.test_start)}..{day_label(self.today)}",
            "test_dates": f"{day_date(self.test_start).date()}..{day_date(self.today).date()}",
        }
