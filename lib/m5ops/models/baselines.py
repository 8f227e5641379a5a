"""Baseline kinds: the yardsticks a learned model must beat to be worth its cost.

Both read only ``ForecastInput.recent_sales`` (the days just before the window) and the
``series``/``day`` of each row, so they need no training: fit only records that it ran, on the
sales of the days a forecast from the cutoff would look at (``fit_inputs = "sales"``: no
feature is read to train them).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from m5ops.errors import DataError
from m5ops.models.base import ForecastInput, ForecastModel
from m5ops.models.params import Param, ParamSchema

SEASON = 7  # days in the weekly pattern seasonal naive repeats


class _Baseline(ForecastModel):
    """A kind with nothing to learn: reads series and day, fits on any frame, even an empty one."""

    inputs = ["series", "day"]
    fit_inputs = "sales"

    def _needs_rows(self) -> bool:
        return False

    def _fit(self, train: pd.DataFrame) -> None:
        """Nothing to learn: the forecast comes from the sales before the window."""


class SeasonalNaiveModel(_Baseline):
    """M5's sNaive: each day repeats the sales of the same weekday in the last week before the window."""

    kind = "seasonal_naive"
    description = ("Seasonal naive (M5 sNaive): each day gets the sales of the same weekday "
                   "in the last week before the window.")
    schema = ParamSchema([])

    def fit_days(self) -> int:
        """The last week: the days it repeats."""
        return SEASON

    def _predict(self, inp: ForecastInput) -> np.ndarray:
        """Day t of series i -> recent_sales[i, -7 + (t - start_day) % 7]."""
        series = inp.features["series"].to_numpy(dtype=np.int64)
        offset = (inp.features["day"].to_numpy(dtype=np.int64) - inp.start_day) % SEASON
        return inp.recent_sales[series, inp.recent_sales.shape[1] - SEASON + offset]


class MovingAverageModel(_Baseline):
    """Every day of the window gets the series' mean sales over the last ``window`` days."""

    kind = "moving_average"
    description = ("Moving average: each day gets the series' mean sales over the last "
                   "`window` days before the window.")
    schema = ParamSchema([
        Param("window", int, 28, low=1, high=365, help="Days before the window to average."),
    ])

    def fit_days(self) -> int:
        """The ``window`` days it averages."""
        return self.window

    def _predict(self, inp: ForecastInput) -> np.ndarray:
        """Per-series mean of the last ``window`` columns of recent_sales, repeated per row."""
        if inp.recent_sales.shape[1] < self.window:
            raise DataError(
                f"moving_average with window={self.window} needs {self.window} days of recent_sales, "
                f"got {inp.recent_sales.shape[1]}; pass more history or lower the window"
            )
        means = inp.recent_sales[:, -self.window:].mean(axis=1)
        return means[inp.features["series"].to_numpy(dtype=np.int64)]
