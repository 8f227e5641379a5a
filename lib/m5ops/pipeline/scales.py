"""A workspace's WRMSSE scales: built at init, advanced at each arrival, repaired when behind.

The running sums (``evaluation.scales.ScaleState``) live in ``stores.scales``, as of one stored
day. Each arrival folds in its day, so a day costs the same at any length of history. Whoever
needs the scales calls ``current_scales``: a state behind the store (a crash between storing a
day and saving the state) is caught up with the missing days, one that cannot be used (missing,
unreadable, built for other series, ahead of the store, or disagreeing with the stored days) is
rebuilt from the whole store. ``wrmsse_at`` is M5's WRMSSE for a forecast issued at a cutoff:
the scales as of the cutoff (the state rewound over the days since), the weights from the 28
days up to it. The backtest and the live score of an issued forecast both use it.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from m5ops.data.schema import day_label
from m5ops.data.store import DayStore
from m5ops.errors import DataError, StoreError
from m5ops.evaluation.hierarchy import Hierarchy
from m5ops.evaluation.scales import BLOCK_DAYS, NOT_STARTED, ScaleState
from m5ops.evaluation.wrmsse import WEIGHT_DAYS, WRMSSE
from m5ops.stores.layout import Workspace
from m5ops.stores.scales import ScaleStore

log = logging.getLogger("m5ops.pipeline.scales")


def build_scales(workspace: Workspace, series: pd.DataFrame, sales: np.ndarray, first_day: int) -> ScaleState:
    """The state of a history in memory (series x days from ``first_day``), saved: what ``init`` calls."""
    hierarchy = Hierarchy.of(series)
    state = ScaleState.of_sales(hierarchy, sales, first_day)
    save_scales(workspace, state, hierarchy)
    return state


def save_scales(workspace: Workspace, state: ScaleState, hierarchy: Hierarchy) -> None:
    """Replace the workspace's scale state, atomically."""
    ScaleStore(workspace.scales_path).write(state.arrays(), last_day=state.last_day, key=hierarchy.key)


def current_scales(workspace: Workspace, store: DayStore | None = None,
                   hierarchy: Hierarchy | None = None) -> ScaleState:
    """The scale state as of the store's last day: as saved, caught up with missing days, or rebuilt."""
    store = store or DayStore(workspace.data_dir)
    hierarchy = hierarchy or Hierarchy.of(store.series())
    first, last = store.first_day(), store.last_day()
    state, why = _load(workspace, hierarchy, store, first, last)
    if state is None:
        log.warning("rebuilding the scale state from %s..%s: %s", day_label(first), day_label(last), why)
        state = _fold(ScaleState.empty(hierarchy.n_nodes, first - 1), store, hierarchy, last)
    elif state.last_day < last:
        log.info("catching the scale state up from %s to %s", day_label(state.last_day), day_label(last))
        state = _fold(state, store, hierarchy, last)
    else:
        return state
    save_scales(workspace, state, hierarchy)
    return state


def _load(workspace: Workspace, hierarchy: Hierarchy, store: DayStore, first: int,
          last: int) -> tuple[ScaleState | None, str]:
    """The saved state if it can be used with the store's days ``first..last`` (else None), and why not."""
    try:
        stored = ScaleStore(workspace.scales_path).read()
    except StoreError as exc:
        return None, str(exc)
    if stored is None:
        return None, "there is no scale state yet"
    if stored.key != hierarchy.key:
        return None, "the scale state was built for other series"
    if not first - 1 <= stored.last_day <= last:
        return None, f"the scale state covers up to day {stored.last_day}, outside the stored days {first}..{last}"
    try:
        state = ScaleState.from_arrays(stored.last_day, stored.arrays)
    except DataError as exc:
        return None, str(exc)
    if state.n_nodes != hierarchy.n_nodes or not _agrees(state, store, hierarchy, first):
        return None, f"the scale state disagrees with the stored sales of {day_label(state.last_day)}"
    return state, ""


def _agrees(state: ScaleState, store: DayStore, hierarchy: Hierarchy, first: int) -> bool:
    """Whether the state's last values are the stored sales of its last day (one day read)."""
    if state.last_day < first:  # the state before any day: nothing seen
        return bool((state.first_day == NOT_STARTED).all() and not state.steps.any())
    sales, _ = store.read_matrix(state.last_day, state.last_day)
    return bool(np.array_equal(hierarchy.aggregate(sales)[:, 0], state.last_value))


def _fold(state: ScaleState, store: DayStore, hierarchy: Hierarchy, through: int) -> ScaleState:
    """``state`` advanced over the stored days after its last one through ``through``, a block at a time."""
    for start in range(state.last_day + 1, through + 1, BLOCK_DAYS):
        sales, _ = store.read_matrix(start, min(start + BLOCK_DAYS - 1, through))
        state = state.advance(hierarchy.aggregate(sales))
    return state


def scales_at(state: ScaleState, cutoff: int, store: DayStore, hierarchy: Hierarchy) -> np.ndarray:
    """Every node's scale as of ``cutoff`` (<= the state's last day), from the stored days since."""
    if cutoff == state.last_day:
        return state.scales()
    sales, _ = store.read_matrix(cutoff, state.last_day)
    return state.rewind(cutoff, hierarchy.aggregate(sales)).scales()


def wrmsse_at(workspace: Workspace, cutoff: int, *, store: DayStore | None = None,
              series: pd.DataFrame | None = None, weight_days: int = WEIGHT_DAYS) -> WRMSSE:
    """M5's WRMSSE of a forecast of the days after ``cutoff``: scales from the whole history up to
    it, weights from the dollar sales of its last ``weight_days`` days."""
    store = store or DayStore(workspace.data_dir)
    hierarchy = Hierarchy.of(store.series() if series is None else series)
    first, last = store.first_day(), store.last_day()
    if not first + weight_days - 1 <= cutoff <= last:
        raise DataError(f"a WRMSSE at cutoff {day_label(cutoff)} needs the {weight_days} days up to it stored; "
                        f"the store holds {day_label(first)}..{day_label(last)}")
    state = current_scales(workspace, store, hierarchy)
    start = cutoff - weight_days + 1
    sales, prices = store.read_matrix(start, cutoff)
    return WRMSSE.from_scales(hierarchy, scales_at(state, cutoff, store, hierarchy), sales, prices)
