"""What the dashboard shows, read from the workspace's stores into plain data.

Nothing here touches a widget: the panels turn these values into widgets, and tests check the
values directly. Reading is cheap enough for a refresh every two seconds: the registry is
re-read only when ``registry.json`` changed; the metrics are re-read only when a cheap
fingerprint of their table changed, and then only the latest values (in SQL) and the history of
the one metric (at the one WRMSSE level) on the chart; the sales totals only when a new day arrived.
A score is shown as a number, as '-' (never evaluated) or as 'n/a' with its reason in the row's
note: never as inf or NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from m5ops.dashboard.production_state import ProductionReader, ProductionView
from m5ops.data.schema import RECENT_DAYS, day_date
from m5ops.evaluation.hierarchy import OVERALL
from m5ops.evaluation.metrics import UNDEFINED, excluded_note
from m5ops.stores.clock import parse_time
from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import LEVELLED_METRIC, MetricStore
from m5ops.stores.registry import Registry
from m5ops.stores.status import StatusReader, WorkspaceStatus

METRICS = {"mae": "MAE", "wmape": "WMAPE", "rmse": "RMSE", "tweedie": "Tweedie deviance", "wrmsse": "WRMSSE"}
DEFAULT_METRIC = "wmape"
# what the monitoring chart plots: the backtest of each day's test window, or the live scores of
# issued forecasts, per complete 28-day issue window (WRMSSE) or per horizon (days ahead)
BACKTEST, WINDOW = "backtest", "window"
SCOPES = {BACKTEST: "backtest (test window)", WINDOW: "live, per 28-day issue window",
          **{f"h{h}": f"live, horizon {h}" for h in range(1, 29)}}
RECENT_RUNS = 30


@dataclass(frozen=True)
class ModelRow:
    """One line of the models table."""

    name: str
    kind: str
    active: bool
    versions: int
    current: str | None
    last_trained: str | None
    metrics: tuple[tuple[str, float | None], ...]
    pending: str | None  # "queued" or "running" when a training of this model is open
    undefined: tuple[str, ...] = ()  # metrics evaluated but without a value (WMAPE of a window without sales)
    excluded: int | None = None  # series its latest WRMSSE left out for lack of a scale

    @property
    def note(self) -> str:
        """Why a score is missing, and what the WRMSSE left out ('' when nothing needs saying)."""
        notes = [f"{METRICS[name]} n/a: {UNDEFINED.get(name, 'not recorded')}" for name in self.undefined]
        return "; ".join([*notes, *([excluded_note(self.excluded)] if self.excluded else [])])

    @property
    def state(self) -> str:
        return "active" if self.active else "paused"


@dataclass(frozen=True)
class RunRow:
    """One line of the runs table."""

    id: str
    task: str
    model: str | None
    model_deleted: bool
    trigger: str
    status: str
    created: str
    started: str | None
    duration_s: float | None
    error: str | None
    output: str | None

    @property
    def label(self) -> str:
        """``task-model`` or ``task``, as in the header."""
        return f"{self.task}-{self.model}" if self.model else self.task


@dataclass(frozen=True)
class RunningRow:
    """A running run and how far its task got: one progress bar."""

    id: str
    label: str  # task-model, or task
    fraction: float | None  # None until the task's first report (its kernel is starting)
    note: str
    elapsed_s: float | None


def scope_horizon(scope: str) -> int:
    """The horizon of a live scope: 0 for the issue windows, h for ``hN``."""
    return 0 if scope == WINDOW else int(scope[1:])


@dataclass
class Snapshot:
    """Everything the dashboard shows at one moment."""

    header: WorkspaceStatus
    models: list[ModelRow]
    runs: list[RunRow]
    history: pd.DataFrame = field(repr=False)
    live: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    totals: tuple[tuple[str, ...], tuple[float, ...]] = ((), ())
    metric: str = "wmape"
    running: tuple[RunningRow, ...] = ()
    scope: str = BACKTEST
    production: ProductionView | None = None
    level: str = OVERALL  # the WRMSSE level of the chart's history ('all', '1'..'12')


# -- pure shaping ----------------------------------------------------------------------------
def run_duration(run: dict, now: datetime | None = None) -> float | None:
    """Seconds from start to finish (or to ``now`` while running); None if never started."""
    started = parse_time(run.get("started_at"))
    if started is None:
        return None
    ended = parse_time(run.get("finished_at")) or now or datetime.now(timezone.utc)
    return max(0.0, (ended - started).total_seconds())


def run_rows(runs: list[dict], live: set[str], now: datetime | None = None) -> list[RunRow]:
    """Runs (newest first) as table rows; a model no longer in the registry is marked deleted."""
    return [RunRow(id=r["id"], task=r["task"], model=r.get("model"),
                   model_deleted=bool(r.get("model")) and r["model"] not in live,
                   trigger=r["trigger"], status=r["status"], created=r["created_at"],
                   started=r.get("started_at"), duration_s=run_duration(r, now),
                   error=r.get("error"), output=r.get("output"))
            for r in runs]


def running_rows(running: list[dict], now: datetime | None = None) -> tuple[RunningRow, ...]:
    """Running runs (oldest first) as progress bars."""
    return tuple(RunningRow(id=r["id"], label=f"{r['task']}-{r['model']}" if r.get("model") else r["task"],
                            fraction=r.get("progress"), note=r.get("progress_note") or "",
                            elapsed_s=run_duration(r, now))
                 for r in running)


def latest_metrics(history: pd.DataFrame) -> dict[tuple[str, str], dict[str, float | None]]:
    """Per (model, version): the metrics of its latest evaluated day (from a full history frame)."""
    if history.empty:
        return {}
    last = history.groupby(["model", "version"])["sim_day"].transform("max")
    newest = history[history["sim_day"] == last]
    return latest_from_rows(zip(newest["model"], newest["version"], newest["metric"], newest["value"]))


def latest_from_rows(rows) -> dict[tuple[str, str], dict[str, float | None]]:
    """``{(model, version): {metric: value}}`` from (model, version, metric, value[, excluded]) rows.

    A metric that was evaluated without a value is present with None (absent: never evaluated).
    """
    out: dict[tuple[str, str], dict[str, float | None]] = {}
    for model, version, metric, value, *_ in rows:
        finite = value is not None and not pd.isna(value) and math.isfinite(value)
        out.setdefault((model, version), {})[metric] = float(value) if finite else None
    return out


def excluded_from_rows(rows) -> dict[tuple[str, str], int]:
    """``{(model, version): series left out}`` from (model, version, metric, value, excluded) rows."""
    return {(model, version): int(excluded) for model, version, metric, _, excluded in rows
            if metric == LEVELLED_METRIC and excluded is not None and not pd.isna(excluded)}


def model_rows(models: dict[str, dict], latest: dict, open_runs: list[dict],
               excluded: dict[tuple[str, str], int] | None = None) -> list[ModelRow]:
    """The registry's live models as table rows, with their current version's latest metrics."""
    pending = {}
    for run in open_runs:  # a running training wins over a queued one
        if run["task"] == "train" and run.get("model"):
            if pending.get(run["model"]) != "running":
                pending[run["model"]] = run["status"]
    rows = []
    for name, model in models.items():
        versions = model["versions"]
        current = model.get("current_version")
        values = latest.get((name, current), {}) if current else {}
        rows.append(ModelRow(
            name=name, kind=model["kind"], active=model["schedule"]["active"], versions=len(versions),
            current=current, last_trained=versions[-1]["sim_date"] if versions else None,
            metrics=tuple((key, values.get(key)) for key in METRICS), pending=pending.get(name),
            undefined=tuple(key for key in METRICS if key in values and values[key] is None),
            excluded=(excluded or {}).get((name, current))))
    return rows


def latest_excluded(history: pd.DataFrame, models: list[str]) -> dict[str, int]:
    """Per model with a non-zero count: the series left out on its latest day in a one-metric history."""
    if history.empty or "excluded" not in history:
        return {}
    chosen = history[history["model"].isin(models)].sort_values(["sim_day", "version"], key=_version_key)
    last = chosen.groupby("model")["excluded"].last()
    return {model: int(count) for model, count in last.items() if not pd.isna(count) and count > 0}


def metric_lines(history: pd.DataFrame, metric: str, models: list[str]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dates and, per model, the metric on each date (NaN where the model has no value).

    Several versions evaluated on one day (a retraining between evaluations) count as the
    newest evaluation of that day, the one that was current then.
    """
    chosen = history[(history["metric"] == metric) & history["model"].isin(models)]
    if chosen.empty:
        return np.array([], dtype="datetime64[ns]"), {}
    chosen = chosen.sort_values(["sim_day", "version"], key=_version_key)
    table = chosen.pivot_table(index="sim_day", columns="model", values="value", aggfunc="last")
    dates = day_date(table.index.to_numpy()).to_numpy()
    # a non-finite value (recorded by an older version) is a gap, never an axis running to inf
    return dates, {name: _finite(table[name].to_numpy(dtype=float)) for name in models if name in table}


def _finite(values: np.ndarray) -> np.ndarray:
    """NaN in place of inf."""
    return np.where(np.isfinite(values), values, np.nan)


def _version_key(column: pd.Series) -> pd.Series:
    """Sort versions by number (v10 after v9)."""
    if column.name == "version":
        return column.str[1:].astype(int)
    return column


def format_value(value: float | None, undefined: bool = False) -> str:
    """A metric value in four significant digits; 'n/a' when evaluated without one, '-' when never evaluated."""
    if value is None or not math.isfinite(value):
        return "n/a" if undefined else "-"
    return f"{value:.4g}"


def format_duration(seconds: float | None) -> str:
    """'-', '12.3 s' or '4 min 05 s'."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


# -- reading the stores ----------------------------------------------------------------------
class WorkspaceReader:
    """Reads one workspace for the dashboard, re-reading each store only when it changed."""

    def __init__(self, home: Path | str):
        self.workspace = Workspace(home).require()
        self.status = StatusReader(self.workspace)
        self.store, self.runs = self.status.store, self.status.runs
        self.metrics = MetricStore(self.workspace.runs_path)
        self.registry = Registry(self.workspace.registry_path)
        self._registry_key: tuple | None = None
        self._registry_data: dict = {}
        self._metrics_key: tuple | None = None
        self._histories: dict[tuple[str, str], pd.DataFrame] = {}
        self._latest: dict = {}
        self._excluded: dict = {}
        self._metric_models: list[str] = []
        self._totals_key: int | None = None
        self._totals: tuple = ((), ())
        self.production = ProductionReader(self.workspace, self.store, self.registry, self.metrics)

    # each part separately, so that a panel can ask for only what it needs
    def registry_data(self) -> dict:
        """The registry, re-read when the file's size or modification time changed."""
        stat = self.workspace.registry_path.stat()
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if key != self._registry_key:
            self._registry_data = self.registry.data()
            self._registry_key = key
        return self._registry_data

    def _metrics_changed(self) -> bool:
        """Whether the metrics table changed since the last read (row count, newest day, sum, newest run)."""
        key = self.metrics.fingerprint()
        if key == self._metrics_key:
            return False
        self._metrics_key, self._histories = key, {}
        latest = self.metrics.latest_rows()
        self._latest, self._excluded = latest_from_rows(latest), excluded_from_rows(latest)
        self._metric_models = self.metrics.models_by_first_day()
        return True

    def history(self, metric: str, scope: str = BACKTEST, level: str = OVERALL) -> pd.DataFrame:
        """The history of one metric in one scope (and, for WRMSSE backtests, one level), re-read on a change."""
        self._metrics_changed()
        level = level if metric == LEVELLED_METRIC and scope == BACKTEST else OVERALL  # only WRMSSE has levels
        key = (metric, scope, level)
        if key not in self._histories:
            if scope == BACKTEST:
                self._histories[key] = self.metrics.history_of(metric, level)
            else:  # sim_day: the scored day at a horizon, the day an issue's window completed for a window
                self._histories[key] = self.metrics.live_of(metric, scope_horizon(scope))
        return self._histories[key]

    def totals(self, today: int, days: int = RECENT_DAYS) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """Dates and total unit sales of the last ``days`` stored days (re-read on a new day)."""
        if today != self._totals_key:
            first = max(self.store.first_day(), today - days + 1)
            sales, _ = self.store.read_matrix(first, today)
            dates = tuple(str(d.date()) for d in day_date(np.arange(first, today + 1)))
            self._totals = (dates, tuple(float(x) for x in sales.sum(axis=0)))
            self._totals_key = today
        return self._totals

    def snapshot(self, metric: str = DEFAULT_METRIC, scope: str = BACKTEST, level: str = OVERALL) -> Snapshot:
        """Everything at once: the header, production, models, runs, one metric's history and recent totals."""
        running, queued = self.runs.running(), self.runs.queued()
        header = self.status.read(running, queued)
        today = header.today_day
        data = self.registry_data()
        history = self.history(metric, scope, level)
        live = tuple(data["models"])
        recent = self.runs.runs(limit=RECENT_RUNS)
        deleted = tuple(m for m in self._metric_models if m not in data["models"])
        return Snapshot(
            header=header,
            models=model_rows(data["models"], self._latest, running + queued, self._excluded),
            runs=run_rows(recent, set(live)), history=history, live=live, deleted=deleted,
            totals=self.totals(today), metric=metric, running=running_rows(running), scope=scope,
            production=self.production.view(self._registry_key, today),
            level=level if metric == LEVELLED_METRIC and scope == BACKTEST else OVERALL)
