"""What each task notebook does, as plain functions: the notebooks only call these and show results."""
from __future__ import annotations

import logging

import pandas as pd

from m5ops.data.arrival import Arrival
from m5ops.pipeline.arrival import arrive_next_day, ensure_features, take_back
from m5ops.pipeline.drift import record_drift
from m5ops.data.schema import day_date, day_label
from m5ops.pipeline.issue import issue_forecasts
from m5ops.pipeline.live_scoring import score_arrival
from m5ops.pipeline.modeling import TrainedVersion, WorkspaceData, score_models, train_version
from m5ops.evaluation.hierarchy import METRIC_LEVELS, OVERALL
from m5ops.evaluation.metrics import METRICS, excluded_note
from m5ops.pipeline.modeling import excluded_column, level_column
from m5ops.pipeline.progress import for_run
from m5ops.errors import ParameterError, RunError
from m5ops.stores.rundb import ACTORS
from m5ops.stores.registry import Registry
from m5ops.stores.runs import RunStore
from m5ops.stores.metrics import MetricStore
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import Issue

log = logging.getLogger("m5ops.pipeline.tasks")


def simulate_day(home: str, run_id: str, seed: int | None = None) -> Arrival:
    """The arrival task: the next day (held-back real, else simulated), its features, the split,
    then the live scoring of every stored forecast of that day."""
    workspace = Workspace(home).require()
    progress = for_run(workspace.runs_path, run_id)
    progress(0.0, "checking the stored features")
    repaired = ensure_features(workspace)
    if repaired:
        log.info("run %s rebuilt missing features of %d day(s)", run_id, len(repaired))
    progress(0.3, "the next day arrives")
    arrival = arrive_next_day(workspace, seed)
    log.info("run %s arrived %s", run_id, arrival.summary())
    progress(0.8, f"scoring the forecasts of {day_label(arrival.day)}")
    try:
        score_arrival(workspace, arrival.day, arrival.sales, run_id)
    except BaseException:  # all or nothing: a retry brings the same day again, and scores it
        log.error("run %s could not score the forecasts of day %d: the day is taken back out", run_id, arrival.day)
        take_back(workspace, arrival.day)
        raise
    progress(1.0, f"{arrival.summary()['d']} arrived ({arrival.source})")
    return arrival


def issue_forecast(home: str, run_id: str, models: list[str] | None = None) -> list[Issue]:
    """The issue task: every current version forecasts today+1..today+28; the ledger keeps each issue."""
    data = WorkspaceData.open(home)
    progress = for_run(data.workspace.runs_path, run_id)
    issued = issue_forecasts(data, models, run_id, progress)
    progress(1.0, f"issued {len(issued)} forecast(s) on {day_label(data.split.today)}")
    log.info("run %s issued %s on day %d", run_id, [f"{i.model} {i.version}" for i in issued] or "nothing",
             data.split.today)
    return issued


def train(home: str, run_id: str, model: str, manual: bool = False, reason: str = "", force: bool = False,
          actor: str | None = None, day: int | None = None) -> TrainedVersion:
    """The training task: a new version of ``model`` at the cutoff of ``day`` (default today), through the gate.

    ``reason`` says why it was started (weekly, a trigger and its evidence); ``actor`` who asked,
    for the audit log: by default ``schedule``, or ``cli`` for a manual run; ``force`` passes the
    gate. The runner pins ``day`` when the training starts, so that an arrival landing meanwhile
    (in the short lane) never moves the cutoff of a training already under way.
    """
    if actor is not None and actor not in ACTORS:
        raise ParameterError(f"actor {actor!r} is not one of {', '.join(ACTORS)}")
    data = WorkspaceData.open(home, today=day)
    if reason:
        log.info("run %s trains %s: %s", run_id, model, reason)
    progress = for_run(data.workspace.runs_path, run_id)
    trained = train_version(data, model, manual=manual, force=force, actor=actor or ("cli" if manual else "schedule"),
                            run_id=run_id, notebook=_notebook_of(data.workspace, run_id), reason=reason,
                            progress=progress)
    progress(1.0, f"trained {model} {trained.version_id}; the notebook draws its figures")
    log.info("run %s trained %s %s, %s by the gate: %s", run_id, model, trained.version_id, trained.verdict.action,
             trained.verdict.reason)
    return trained


def _notebook_of(workspace: Workspace, run_id: str) -> str | None:
    """The executed notebook a recorded run writes (None for a run that is not in runs.db)."""
    try:
        return RunStore(workspace.runs_path).get(run_id).get("output")
    except RunError:
        return None


def evaluate(home: str, run_id: str, models: list[str] | None = None) -> pd.DataFrame:
    """The evaluation task: score current versions on the test window, append to the history.

    Each model's metrics, and its WRMSSE at each of the 12 levels with the series each level
    left out, are stored in one transaction; then the drift of its features and target against
    its training window. The table returned shows the overall values.
    """
    data = WorkspaceData.open(home)
    names = models or sorted(Registry(data.workspace.registry_path).models())
    progress = for_run(data.workspace.runs_path, run_id)
    scores = score_models(data, names, progress)
    metrics = MetricStore(data.workspace.runs_path)
    window = data.split.test_range()
    for row in scores.to_dict("records"):
        levels, excluded = _levels_of(row)
        metrics.record_levels(data.split.today, data.sim_date, row["model"], row["version"], levels, window, run_id,
                              excluded=excluded)
    progress(0.95, "drift against each version's training window")
    record_drift(data, list(scores["model"]) if len(scores) else [], run_id)
    progress(1.0, f"evaluated {len(scores)} model(s)")
    log.info("run %s evaluated %d model(s) on days %d..%d", run_id, len(scores), *window)
    return _overall_table(scores)


def _levels_of(row: dict) -> tuple[dict[str, dict[str, float | None]], dict[str, int]]:
    """One ``score_models`` row as the values and the left-out counts of each stored level."""
    levels = {OVERALL: {name: row[name] for name in METRICS}}
    levels.update({key: {"wrmsse": row[level_column(key)]} for key in METRIC_LEVELS if key != OVERALL})
    return levels, {key: int(row[excluded_column(key)]) for key in METRIC_LEVELS}


def _overall_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Model, version, the overall metrics and a note of the series the WRMSSE left out."""
    if scores.empty:
        return scores
    table = scores[["model", "version", *METRICS]].copy()
    table["note"] = scores[excluded_column(OVERALL)].map(excluded_note)
    return table


def metrics_history(home: str, model: str | None = None) -> pd.DataFrame:
    """The metrics history, one row per (simulated day, model, metric)."""
    workspace = Workspace(home).require()
    history = MetricStore(workspace.runs_path).history(model=model)
    if not history.empty:
        history["date"] = day_date(history["sim_day"].to_numpy())
    return history
