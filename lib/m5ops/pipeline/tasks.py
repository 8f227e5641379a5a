"""What each task notebook does, as plain functions: the notebooks only call these and show results."""
from __future__ import annotations

import logging

import pandas as pd

from m5ops.data.arrival import Arrival
from m5ops.pipeline.arrival import arrive_next_day, ensure_features
from m5ops.data.schema import day_date
from m5ops.pipeline.modeling import TrainedVersion, WorkspaceData, score_models, train_version
from m5ops.pipeline.progress import for_run
from m5ops.stores.registry import Registry
from m5ops.stores.metrics import MetricStore
from m5ops.stores.layout import Workspace

log = logging.getLogger("m5ops.pipeline.tasks")


def simulate_day(home: str, run_id: str, seed: int | None = None) -> Arrival:
    """The arrival task: the next day (held-back real, else simulated), its features, the split."""
    workspace = Workspace(home).require()
    progress = for_run(workspace.runs_path, run_id)
    progress(0.0, "checking the stored features")
    repaired = ensure_features(workspace)
    if repaired:
        log.info("run %s rebuilt missing features of %d day(s)", run_id, len(repaired))
    progress(0.3, "the next day arrives")
    arrival = arrive_next_day(workspace, seed)
    progress(1.0, f"{arrival.summary()['d']} arrived ({arrival.source})")
    log.info("run %s arrived %s", run_id, arrival.summary())
    return arrival


def train(home: str, run_id: str, model: str, manual: bool = False, reason: str = "") -> TrainedVersion:
    """The training task: a new version of ``model`` on the train split at today's cutoff."""
    data = WorkspaceData.open(home)
    if reason:
        log.info("run %s trains %s: %s", run_id, model, reason)
    progress = for_run(data.workspace.runs_path, run_id)
    trained = train_version(data, model, manual=manual, progress=progress)
    progress(1.0, f"trained {model} {trained.version_id}; the notebook draws its figures")
    log.info("run %s trained %s %s", run_id, model, trained.version_id)
    return trained


def evaluate(home: str, run_id: str, models: list[str] | None = None) -> pd.DataFrame:
    """The evaluation task: score current versions on the test window, append to the history."""
    data = WorkspaceData.open(home)
    names = models or sorted(Registry(data.workspace.registry_path).models())
    progress = for_run(data.workspace.runs_path, run_id)
    scores = score_models(data, names, progress)
    metrics = MetricStore(data.workspace.runs_path)
    window = data.split.test_range()
    for row in scores.to_dict("records"):
        values = {k: v for k, v in row.items() if k not in ("model", "version")}
        metrics.record(data.split.today, data.sim_date, row["model"], row["version"], values, window, run_id)
    progress(1.0, f"evaluated {len(scores)} model(s)")
    log.info("run %s evaluated %d model(s) on days %d..%d", run_id, len(scores), *window)
    return scores


def metrics_history(home: str, model: str | None = None) -> pd.DataFrame:
    """The metrics history, one row per (simulated day, model, metric)."""
    workspace = Workspace(home).require()
    history = MetricStore(workspace.runs_path).history(model=model)
    if not history.empty:
        history["date"] = day_date(history["sim_day"].to_numpy())
    return history
