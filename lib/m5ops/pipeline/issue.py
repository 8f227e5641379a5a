"""Issued forecasts: every current version forecasts days ``today+1 .. today+28`` for every series.

Every feature of those days is computable today (lags of 28 days and more): the feature rows of
the next 28 days are built by the same core that builds a stored day (``data.features``), from
the ``HISTORY_DAYS`` stored days before them and the running price maximum, with the 28 unknown
sales left NaN (no feature reads them) and nothing appended to any store. The calendar comes from
the calendar file while it lasts, then from its rules. Prices: the real ones where the hold-back
keeps them, else the last known price carried forward; each target day records which it used.

So once days ``i+1 .. i+28`` have arrived, the version's backtest at ``today = i+28`` reads the
very feature rows its issue of day ``i`` was made from, and gives the same values.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from m5ops.data.arrival import calendar_through
from m5ops.data.features import HISTORY_DAYS, attach_ids, calendar_features, compute_block, day_columns
from m5ops.data.schema import HORIZON, RECENT_DAYS, day_label
from m5ops.errors import DataError, LedgerError, ModelError
from m5ops.models import ForecastInput
from m5ops.models.progress import Progress, no_progress
from m5ops.pipeline.modeling import WorkspaceData, forecast_matrix, load_current
from m5ops.pipeline.serving import serving_model_name
from m5ops.stores.holdback import Holdback
from m5ops.stores.ledger import ForecastLedger, Issue
from m5ops.stores.registry import Registry

log = logging.getLogger("m5ops.pipeline.issue")


@dataclass
class FutureWindow:
    """What every model's issue of one day is made from."""

    issue_day: int
    inputs: ForecastInput  # the feature rows of the next HORIZON days and the sales before them
    price_source: tuple[str, ...]  # per target day: 'holdback' or 'carried_forward'


def future_prices(data: WorkspaceData) -> tuple[np.ndarray, tuple[str, ...]]:
    """Prices of the next HORIZON days (n_series, HORIZON): held-back real ones, else the last known carried forward."""
    today = data.split.today
    holdback = Holdback(data.workspace.holdback_path)
    last = data.store.read_matrix(today, today)[1][:, 0]
    prices = np.empty((len(last), HORIZON), dtype=np.float32)
    sources = []
    for h, day in enumerate(range(today + 1, today + HORIZON + 1)):
        real = holdback.day(day)
        if real is not None:
            last = np.asarray(real[1], dtype=np.float32)
        sources.append("holdback" if real is not None else "carried_forward")
        prices[:, h] = last
    return prices, tuple(sources)


def future_features(data: WorkspaceData, prices: np.ndarray) -> pd.DataFrame:
    """Feature rows of days today+1..today+HORIZON (sales NaN), as ``FeatureStore.read`` gives stored days."""
    today, store_first = data.split.today, data.store.first_day()
    first = max(store_first, today + 1 - HISTORY_DAYS)
    sales, past_prices = data.store.read_matrix(first, today)
    price_max = data.features.price_max(first - 1)
    if first > store_first and price_max is None:
        raise DataError(f"features of {day_label(first - 1)} are missing; rebuild features with 'm5ops init --force'")
    unknown = np.full((len(sales), HORIZON), np.nan, dtype=np.float32)
    block = compute_block(np.hstack([sales, unknown]), np.hstack([past_prices, prices]), first, today + 1, price_max)
    calendar = calendar_through(data.store, today + HORIZON)
    days = calendar_features(calendar.loc[today + 1:today + HORIZON])
    states = data.series["state_id"]
    parts = [day_columns(block, j, days, states) for j in range(HORIZON)]
    columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0] if name != "price_max"}
    return attach_ids(pd.DataFrame(columns, copy=False), data.series)


def future_window(data: WorkspaceData) -> FutureWindow:
    """The inputs of today's issue, built once for every model."""
    today = data.split.today
    prices, sources = future_prices(data)
    frame = future_features(data, prices)
    recent, _ = data.store.read_matrix(max(data.store.first_day(), today + 1 - RECENT_DAYS), today)
    return FutureWindow(today, ForecastInput(frame, recent, today + 1), sources)


def forecast_issue(data: WorkspaceData, window: FutureWindow, name: str, run_id: str | None = None) -> Issue | None:
    """Model ``name``'s current version's forecast of the window (None if it has no version); not stored."""
    loaded = load_current(data, name)
    if loaded is None:
        return None
    model, version = loaded
    values = forecast_matrix(model, window.inputs, len(data.series))
    return Issue(name, version["id"], window.issue_day, values, window.price_source, run_id).check()


def models_to_issue(data: WorkspaceData, names: list[str] | None = None) -> list[str]:
    """The named models (default: every model) that have a current version and have not issued today."""
    ledger = ForecastLedger.of(data.workspace)
    models = Registry(data.workspace.registry_path).models()
    wanted = names if names is not None else list(models)
    pending = []
    for name in wanted:
        if name not in models or not models[name].get("current_version"):
            log.info("%s does not issue: %s", name, "no such model" if name not in models else "no version yet")
        elif ledger.has_issue(name, data.split.today):
            log.info("%s already issued on %s: kept as it is", name, day_label(data.split.today))
        else:
            pending.append(name)
    return pending


def issue_forecasts(data: WorkspaceData, names: list[str] | None = None, run_id: str | None = None,
                    progress: Progress = no_progress) -> list[Issue]:
    """Every pending model's issue of today, each stored in the ledger as soon as it is made.

    A model that fails to forecast does not stop the others; the failures are raised together
    at the end (a ModelError), after the issues that succeeded are stored.
    """
    pending = models_to_issue(data, names)
    ledger, issued, failed = ForecastLedger.of(data.workspace), [], []
    if pending:
        progress(0.05, f"building the features of {day_label(data.split.today + 1)}..")
        window = future_window(data)
        for done, name in enumerate(pending):
            progress(0.2 + 0.75 * done / len(pending), f"issuing {name} ({done + 1} of {len(pending)})")
            try:
                issue = forecast_issue(data, window, name, run_id)
                ledger.write(issue)
                issued.append(issue)
            except LedgerError as exc:
                log.warning("run %s: %s was not issued: %s", run_id, name, exc)  # issued meanwhile by another run
            except Exception as exc:  # one model's failure is reported, after the others have issued
                log.exception("run %s: %s could not issue its forecast", run_id, name)
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
    prune_ledger(data)
    if failed:
        raise ModelError(f"{len(failed)} of {len(pending)} model(s) could not issue: {'; '.join(failed)}")
    return issued


def prune_ledger(data: WorkspaceData) -> int:
    """Apply the workspace's retention (``init --keep-forecasts``): the serving model keeps every issue."""
    serving = serving_model_name(data.workspace)
    removed = ForecastLedger.of(data.workspace).prune(data.split.today, data.workspace.config().keep_forecasts,
                                                      {serving} if serving else set())
    if removed:
        log.info("pruned %d issue(s) older than the retention (serving model %s keeps all)", len(removed), serving)
    return len(removed)
