"""What each task notebook does, as plain functions: the notebooks only call these and show results."""
from __future__ import annotations

import logging

import pandas as pd

from m5ops.data.arrival import Arrival, arrive_next_day, ensure_features
from m5ops.data.schema import day_date
from m5ops.modeling import TrainedVersion, WorkspaceData, score_models, train_version
from m5ops.registry import Registry
from m5ops.runs import RunStore
from m5ops.workspace import Workspace

log = logging.getLogger("m5ops.tasks")


def simulate_day(home: str, run_id: str, seed: int | None = None) -> Arrival:
    """The arrival task: the next day (held-back real, else simulated), its features, the split."""
    workspace = Workspace(home).require()
    repaired = ensure_features(workspace)
    if repaired:
        log.info("run %s rebuilt missing features of %d day(s)", run_id, len(repaired))
    arrival = arrive_next_day(workspace, seed)
    log.info("run %s arrived %s", run_id, arrival.summary())
    return arrival


def train(home: str, run_id: str, model: str, manual: bool = False) -> TrainedVersion:
    """The training task: a new version of ``model`` on the train split at today's cutoff."""
    data = WorkspaceData.open(home)
    trained = train_version(data, model, manual=manual)
    log.info("run %s trained %s %s", run_id, model, trained.version_id)
    return trained


def evaluate(home: str, run_id: str, models: list[str] | None = None) -> pd.DataFrame:
    """The evaluation task: score current versions on the test window, append to the history."""
    data = WorkspaceData.open(home)
    names = models or sorted(Registry(data.workspace.registry_path).models())
    scores = score_models(data, names)
    runs = RunStore(data.workspace.runs_path)
    window = data.split.test_range()
    for row in scores.to_dict("records"):
        values = {k: v for k, v in row.items() if k not in ("model", "version")}
        runs.record_metrics(data.split.today, data.sim_date, row["model"], row["version"], values, window, run_id)
    log.info("run %s evaluated %d model(s) on days %d..%d", run_id, len(scores), *window)
    return scores


def metrics_history(home: str, model: str | None = None) -> pd.DataFrame:
    """The metrics history, one row per (simulated day, model, metric)."""
    workspace = Workspace(home).require()
    history = RunStore(workspace.runs_path).metrics(model=model)
    if not history.empty:
        history["date"] = day_date(history["sim_day"].to_numpy())
    return history
