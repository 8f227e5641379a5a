"""Tables and static charts for the task notebooks (the dashboard has its own, interactive ones)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from m5ops.data.arrival import Arrival
from m5ops.data.schema import RECENT_DAYS, day_date
from m5ops.pipeline.modeling import TrainedVersion, WorkspaceData, in_sample_fit
from m5ops.pipeline.tasks import metrics_history



def arrival_table(arrival: Arrival) -> pd.DataFrame:
    """The arrived day in one row."""
    return pd.DataFrame([arrival.summary()])


def arrival_factors(arrival: Arrival) -> pd.DataFrame:
    """Summary of the factors behind a simulated day (empty for a replayed real day)."""
    if arrival.factors is None:
        return pd.DataFrame()
    return arrival.factors.describe().T[["mean", "min", "50%", "max"]]


def plot_recent_totals(home: str, arrival: Arrival):
    """Total sales of the last weeks, the new day marked."""
    data = WorkspaceData.open(home)
    first = max(data.store.first_day(), arrival.day - RECENT_DAYS)
    sales, _ = data.store.read_matrix(first, arrival.day)
    fig, ax = plt.subplots(figsize=(9, 3))
    dates = day_date(range(first, arrival.day + 1))
    ax.plot(dates, sales.sum(axis=0), color="#4477aa")
    ax.scatter([arrival.date], [arrival.sales.sum()], color="#cc3311", zorder=3, label=f"new day ({arrival.source})")
    ax.set_ylabel("units, all series")
    ax.legend()
    return _shown_once(fig)


def split_table(home: str) -> pd.DataFrame:
    """The current train/test split."""
    return pd.DataFrame([WorkspaceData.open(home).split.describe()])


def version_table(trained: TrainedVersion) -> pd.DataFrame:
    """The new version's record in one row."""
    record = {k: v for k, v in trained.record.items() if k != "metrics"}
    return pd.DataFrame([{**record, **trained.record.get("metrics", {})}])


def plot_importance(trained: TrainedVersion, top: int = 20):
    """Gain importance of the top features, or a note when the kind has none."""
    importance = trained.model.feature_importance()
    if importance is None or len(importance) == 0:
        return f"{trained.model.kind} has no feature importance"
    fig, ax = plt.subplots(figsize=(7, 5))
    importance.sort_values().tail(top).plot.barh(ax=ax, color="#4477aa")
    ax.set_xlabel("gain")
    return _shown_once(fig)


def plot_fit(home: str, trained: TrainedVersion):
    """Actual against fitted total units over the last four training weeks."""
    data = WorkspaceData.open(home)
    totals = in_sample_fit(data, trained.model, trained.record["cutoff_day"])
    fig, ax = plt.subplots(figsize=(9, 3))
    totals.plot(ax=ax, color=["#4477aa", "#cc3311"], style=["-", "--"])
    ax.set_ylabel("units, all series")
    ax.set_title(f"{trained.model.kind}: fit on the last 28 training days")
    return _shown_once(fig)


def plot_metric_history(home: str, metric: str):
    """One line per model of a metric over simulated time."""
    history = metrics_history(home)
    if history.empty:
        return "no metrics yet"
    chosen = history[history["metric"] == metric].pivot_table(index="date", columns="model", values="value")
    fig, ax = plt.subplots(figsize=(9, 3.5))
    chosen.plot(ax=ax, marker="o", markersize=3)
    ax.set_ylabel(metric)
    return _shown_once(fig)


def _shown_once(fig):
    """Close the figure so Jupyter shows it once, as the cell's value, not again at cell end."""
    fig.tight_layout()
    plt.close(fig)
    return fig
