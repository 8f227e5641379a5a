"""Demand scenarios: checking one against the workspace, and applying them to an arriving day.

A scenario multiplies the sales of the arriving days in its range, for one slice of the series
(store, category, department), real held-back days and simulated ones alike. Several that cover
the same series multiply. Sales are whole units, so the scaled values are rounded
**stochastically** (``floor(x)``, plus one with probability ``x - floor(x)``) with a generator
drawn from the workspace seed and the day: unbiased, so a +60% shift is +60% in expectation even
on series selling 0-2 units a day (round-half-even would turn 1 x 1.6 into 2, +100%), and the
same day arriving again is scaled the same way.

The simulator draws a day from the recent stored history; it is given that history with the
recorded scenario factors divided out (``unscaled``), so a lasting +60% stays +60% instead of
compounding day after day (1.6, 2.56, ...).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from m5ops.data.schema import day_label
from m5ops.data.store import DayStore
from m5ops.errors import ParameterError
from m5ops.stores.layout import Workspace
from m5ops.stores.scenarios import SLICE_COLUMNS, Scenario, ScenarioStore

ROUNDING_STREAM = 5  # the third word of the rounding generator's seed: apart from the simulator's [seed, day]


def slice_values(series: pd.DataFrame) -> dict[str, list[str]]:
    """The stores, categories and departments of the workspace's series, by option name."""
    return {name: sorted(series[column].astype(str).unique()) for name, column in SLICE_COLUMNS.items()}


def series_mask(series: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Which series (rows of ``series``) the scenario touches."""
    mask = np.ones(len(series), dtype=bool)
    for column, value in scenario.slice().items():
        mask &= series[column].astype(str).to_numpy() == value
    return mask


def check_scenario(series: pd.DataFrame, today: int, from_day: int, to_day: int | None, factor: float,
                   store: str | None = None, category: str | None = None, department: str | None = None) -> None:
    """A ParameterError, naming the fix, for a scenario that could not mean what was asked."""
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise ParameterError(f"--factor {factor} must be a number > 0 (1.6 for +60%, 0.5 to halve the sales)")
    if from_day < 1:
        raise ParameterError(f"--from-day {from_day} must be a day number >= 1 (today is {day_label(today)})")
    if to_day is not None and to_day < from_day:
        raise ParameterError(f"--to-day {to_day} is before --from-day {from_day}; pass --to-day >= --from-day,"
                             " or leave it out for an open-ended scenario")
    if to_day is not None and to_day <= today:
        raise ParameterError(f"days {from_day}..{to_day} have all arrived already (today is {day_label(today)});"
                             f" a scenario changes arriving days: pass days after {today}")
    valid = slice_values(series)
    for name, value in (("store", store), ("category", category), ("department", department)):
        if value is not None and value not in valid[name]:
            raise ParameterError(f"unknown --{name} {value!r}; this workspace's are: {', '.join(valid[name])}")
    wanted = Scenario(0, from_day, to_day, factor, store, category, department)
    if not series_mask(series, wanted).any():
        given = " and ".join(f"--{name} {value}" for name, value in
                             (("store", store), ("category", category), ("department", department)) if value)
        raise ParameterError(f"no series of this workspace matches {given} at once; leave one out, or pick a"
                             " department of that category")


def add_scenario(workspace: Workspace, from_day: int, to_day: int | None, factor: float, store: str | None = None,
                 category: str | None = None, department: str | None = None) -> Scenario:
    """Check a scenario against the workspace's series and days, then record it."""
    store_days = DayStore(workspace.require().data_dir)
    check_scenario(store_days.series(), store_days.last_day(), from_day, to_day, factor, store, category, department)
    return ScenarioStore(workspace.runs_path).add(from_day, to_day, factor, store, category, department)


def stochastic_round(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole numbers whose expectation is ``values``: floor, plus one with the fractional part's probability."""
    floor = np.floor(values)
    return (floor + (rng.random(values.shape) < values - floor)).astype(np.int64)


def apply_scenarios(sales: np.ndarray, series: pd.DataFrame, day: int, scenarios: list[Scenario],
                    seed: int) -> tuple[np.ndarray, list[dict]]:
    """The day's sales with ``scenarios`` applied (rounded stochastically), and what each one did."""
    if not scenarios:
        return sales, []
    factor = np.ones(len(series))
    masks = [series_mask(series, s) for s in scenarios]
    for scenario, mask in zip(scenarios, masks):
        factor[mask] *= scenario.factor
    rng = np.random.default_rng([int(seed), int(day), ROUNDING_STREAM])
    scaled = stochastic_round(np.asarray(sales, dtype=np.float64) * factor, rng)
    applied = [{"scenario": s.id, "label": s.label(), "factor": s.factor, "series": int(mask.sum()),
                "units_before": int(np.asarray(sales)[mask].sum()), "units_after": int(scaled[mask].sum())}
               for s, mask in zip(scenarios, masks)]
    return scaled, applied


def unscaled(sales: np.ndarray, first: int, series: pd.DataFrame, store: ScenarioStore) -> np.ndarray:
    """Stored sales of days ``first..`` with the scenario factors recorded on each day divided out."""
    last = first + sales.shape[1] - 1
    factors = np.ones(sales.shape)
    for day, scenario in store.applied_between(first, last):
        factors[series_mask(series, scenario), day - first] *= scenario.factor
    return sales / factors if (factors != 1).any() else sales
