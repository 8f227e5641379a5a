"""The daily arrival: the next held-back real day, else a simulated one, stored with its features.

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
from m5ops.stores.holdback import Holdback
from m5ops.stores.layout import Workspace

log = logging.getLogger("m5ops.arrival")


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
