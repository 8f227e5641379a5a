"""The daily arrival: the next held-back real day, else a simulated one, stored with its features.

The demand scenarios covering the day multiply its sales before it is stored
(``pipeline.scenarios``); what they did is recorded with the day (``scenario_days``) and kept
on the ``Arrival``.

A failed arrival leaves the store exactly as it was: a day whose features or WRMSSE scale sums
could not be built is taken out again, so no later run finds a day without features. The scale
state is saved last, atomically, so it never covers a day the store does not hold.
"""
from __future__ import annotations

import contextlib
import logging

from m5ops.data.arrival import Arrival, calendar_through
from m5ops.data.feature_store import FeatureStore
from m5ops.data.simulate import LOOKBACK_DAYS, simulate_next_day
from m5ops.data.store import DayStore
from m5ops.pipeline.scales import current_scales
from m5ops.pipeline.scenarios import apply_scenarios, unscaled
from m5ops.stores.holdback import Holdback
from m5ops.stores.layout import Workspace
from m5ops.stores.scenarios import ScenarioStore

log = logging.getLogger("m5ops.arrival")


def arrive_next_day(workspace: Workspace, seed: int | None = None) -> Arrival:
    """Append the day after today to the store (real if held back, else simulated), then its features."""
    store, features = DayStore(workspace.data_dir), FeatureStore(workspace.features_dir)
    scenarios = ScenarioStore(workspace.runs_path)
    seed = workspace.config().seed if seed is None else seed
    day, series = store.last_day() + 1, store.series()
    calendar = calendar_through(store, day)
    real = Holdback(workspace.holdback_path).day(day)
    if real is not None:
        arrival = Arrival(day, "replay", real[0], real[1])
    else:
        first = max(store.first_day(), day - LOOKBACK_DAYS)
        sales, prices = store.read_matrix(first, day - 1)
        simulated = simulate_next_day(unscaled(sales, first, series, scenarios), prices, calendar.loc[first:day - 1],
                                      calendar.loc[day], series, seed)
        arrival = Arrival(day, "simulated", simulated.sales, simulated.prices, simulated.factors)
    arrival.sales, arrival.scenarios = apply_scenarios(arrival.sales, series, day, scenarios.applying_on(day), seed)
    if arrival.scenarios:
        log.info("day %d: demand scenarios applied: %s", day, arrival.scenarios)
    # recorded before the day is stored: a day stored unrecorded would be un-scaled wrongly later,
    # while a record left by a failed arrival is replaced when the day arrives again
    scenarios.record_applied(day, [(s["scenario"], s["factor"], s["series"]) for s in arrival.scenarios])
    store.append_day(day, arrival.sales, arrival.prices)
    try:
        features.build_day(store, day, calendar)
        current_scales(workspace, store)  # folds the new day into the running scale sums, and saves them
    except BaseException:
        log.error("the features or scale sums of day %d could not be built: the day is taken back out of the store",
                  day)
        take_back(workspace, day)
        raise
    return arrival


def take_back(workspace: Workspace, day: int) -> None:
    """Remove the last arrived day and its features (if built), as if it had not arrived."""
    with contextlib.suppress(FileNotFoundError):
        FeatureStore(workspace.features_dir).remove_day(day)
    DayStore(workspace.data_dir).remove_last_day(day)
    ScenarioStore(workspace.runs_path).forget_day(day)


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
