"""Live metrics: what was forecast, scored as the actuals arrive.

On the arrival of day ``d``, every stored forecast that targeted ``d`` (issued on days
``d-28 .. d-1``) is scored by model, version and horizon ``h = d - issue_day``: MAE, WMAPE, RMSE
and Tweedie deviance, as ``source="live"`` rows of the metrics history (``sim_day = d``,
``horizon = h``, ``issue_day = i``, window ``d..d``). The issues of day ``d-28`` are complete
with ``d``: their WRMSSE over the whole window is recorded too (``horizon = 0``, level ``all``
and levels 1..12, window ``i+1..i+28``). Only the ledger files that can target ``d`` are read,
so the cost does not grow with the ledger's length (``bench/bench_ledger.py``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from m5ops.data.schema import HORIZON, day_date
from m5ops.data.store import DayStore
from m5ops.evaluation.metrics import evaluate_forecast
from m5ops.pipeline.scales import wrmsse_at
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import ForecastLedger
from m5ops.stores.metrics import Evaluation, MetricStore

log = logging.getLogger("m5ops.pipeline.live_scoring")


@dataclass(frozen=True)
class LiveScore:
    """One scored scope: a day's forecast of one issue at one horizon, or an issue's whole window."""

    model: str
    version: str
    issue_day: int
    horizon: int  # 1..28; 0 for the whole window
    values: dict[str, float]
    window: tuple[int, int]
    level: str = "all"
    excluded: int | None = None  # series the WRMSSE left out (no scale)


def horizon_scores(forecasts: pd.DataFrame, actual: np.ndarray, day: int) -> list[LiveScore]:
    """Point metrics of every issue's forecast of ``day`` (``forecasts``: the ledger's rows targeting it)."""
    actual = np.asarray(actual, dtype=np.float64)
    scores = []
    for (model, version, issue_day), rows in forecasts.groupby(["model", "version", "issue_day"], observed=True):
        predicted = np.zeros(len(actual))
        predicted[rows["series"].to_numpy()] = rows["value"].to_numpy(dtype=np.float64)
        scores.append(LiveScore(str(model), str(version), int(issue_day), day - int(issue_day),
                                evaluate_forecast(actual, predicted), (day, day)))
    return scores


def window_scores(workspace: Workspace, ledger: ForecastLedger, store: DayStore, series: pd.DataFrame,
                  day: int) -> list[LiveScore]:
    """WRMSSE (overall and by level) of every issue whose window ``day`` completes (issued on ``day - 28``).

    The same measure as the backtest's (``pipeline.scales.wrmsse_at`` at the issue day): M5's
    full-history scales, kept incrementally, with series that have no scale left out and counted.
    """
    issue_day = day - HORIZON
    models = ledger.models_issued(issue_day)
    if not models:
        return []
    evaluator = wrmsse_at(workspace, issue_day, store=store, series=series)
    actual, _ = store.read_matrix(issue_day + 1, day)
    scores = []
    for model in models:
        issue = ledger.read_issue(model, issue_day)
        window = (issue_day + 1, day)
        for key, (value, left_out) in evaluator.score(actual, issue.values).by_key().items():
            scores.append(LiveScore(model, issue.version, issue_day, 0, {"wrmsse": value}, window, level=key,
                                    excluded=left_out or None))
    return scores


def record_live(metrics: MetricStore, day: int, scores: list[LiveScore], run_id: str | None) -> None:
    """Store live scores as ``source="live"`` rows of the metrics history at ``sim_day = day``, in one transaction."""
    sim_date = str(day_date(day).date())
    metrics.record_all(Evaluation(day, sim_date, s.model, s.version, s.values, s.window, run_id, source="live",
                                  level=s.level, horizon=s.horizon, issue_day=s.issue_day, excluded=s.excluded)
                       for s in scores)


def score_arrival(workspace: Workspace, day: int, actual: np.ndarray, run_id: str | None = None) -> list[LiveScore]:
    """Score and record every stored forecast of the arrived ``day``; returns the scores (again: replaced)."""
    ledger, store = ForecastLedger.of(workspace), DayStore(workspace.data_dir)
    scores = horizon_scores(ledger.targeting(day), actual, day)
    scores += window_scores(workspace, ledger, store, store.series(), day)
    record_live(MetricStore(workspace.runs_path), day, scores, run_id)
    log.info("run %s scored %d live scope(s) of day %d", run_id, len(scores), day)
    return scores
