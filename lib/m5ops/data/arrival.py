"""What one arrival of a new day brings, and the calendar it is built on (``pipeline.arrival`` stores it)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from m5ops.data.calendar import extend_calendar
from m5ops.data.schema import day_date, day_label
from m5ops.data.store import DayStore


@dataclass
class Arrival:
    """What one arrival added."""

    day: int
    source: str  # "replay" or "simulated"
    sales: np.ndarray
    prices: np.ndarray
    factors: pd.DataFrame | None = field(default=None, repr=False)
    scenarios: list[dict] = field(default_factory=list)  # what each demand scenario applied did (pipeline.scenarios)

    @property
    def date(self) -> pd.Timestamp:
        return day_date(self.day)

    def summary(self) -> dict:
        """One line of figures for logs and the notebook."""
        return {"day": self.day, "d": day_label(self.day), "date": str(self.date.date()),
                "source": self.source, "total_sales": int(self.sales.sum()),
                "series_selling": int((self.sales > 0).sum()), "series": int(len(self.sales)),
                "scenarios": ", ".join(s["label"] for s in self.scenarios) or "none"}

    def scenario_table(self) -> pd.DataFrame:
        """One row per demand scenario applied to this day: its factor, the series and units it changed."""
        columns = ["scenario", "label", "factor", "series", "units_before", "units_after"]
        return pd.DataFrame(self.scenarios, columns=columns).set_index("scenario")


def calendar_through(store: DayStore, day: int) -> pd.DataFrame:
    """The base calendar, extended by the calendar's rules through ``day``, indexed by day."""
    calendar = extend_calendar(store.base_calendar(), day)
    return calendar.set_index(calendar["day"].astype(int), drop=False)
