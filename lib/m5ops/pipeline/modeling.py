"""Training a model version and scoring versions on the test window, on a workspace's data."""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from m5ops.data.feature_store import FeatureStore
from m5ops.data.schema import RECENT_DAYS, day_date
from m5ops.data.split import Split
from m5ops.data.store import DayStore
from m5ops.errors import ModelError, ParameterError
from m5ops.evaluation.hierarchy import OVERALL
from m5ops.evaluation.metrics import evaluate_forecast
from m5ops.models import ForecastInput, ForecastModel, get_kind
from m5ops.models.progress import Progress, no_progress, part
from m5ops.pipeline.lineage import version_lineage
from m5ops.stores.registry import Registry, find_version
from m5ops.stores.layout import Workspace
from m5ops.evaluation.wrmsse import WRMSSE, WRMSSEScore
from m5ops.pipeline.scales import wrmsse_at

if TYPE_CHECKING:
    from m5ops.pipeline.gate import Verdict

FIT_PART = (0.10, 0.95)  # of a training's progress: reading the features before, saving after
GATE_AT = 0.97  # then the gate scores the new version and the current one
log = logging.getLogger("m5ops.pipeline.modeling")


@dataclass
class WorkspaceData:
    """The stores and the current split of one workspace."""

    workspace: Workspace
    store: DayStore
    features: FeatureStore
    split: Split
    series: pd.DataFrame

    @classmethod
    def open(cls, home, today: int | None = None) -> "WorkspaceData":
        """The workspace as of ``today`` (default: the last stored day; a pinned training passes its day)."""
        workspace = Workspace(home).require()
        store = DayStore(workspace.data_dir)
        first, last = store.first_day(), store.last_day()
        if today is not None and not first <= today <= last:
            raise ParameterError(f"day {today} is not stored: {workspace.home} holds days {first}..{last};"
                                 " leave the day out to use the last one")
        split = Split(first, last if today is None else today, workspace.config().test_days)
        return cls(workspace, store, FeatureStore(workspace.features_dir), split, store.series())

    @property
    def sim_date(self) -> str:
        return str(day_date(self.split.today).date())


@dataclass
class TrainedVersion:
    """What a training produced."""

    model: ForecastModel
    version_id: str
    record: dict
    verdict: Verdict | None = None  # the gate's, on the registered version


def train_version(data: WorkspaceData, name: str, *, manual: bool = False, force: bool = False,
                  actor: str = "schedule", run_id: str | None = None, notebook: str | None = None,
                  reason: str = "", progress: Progress = no_progress) -> TrainedVersion:
    """Fit model ``name`` on the train split; the gate registers the version, current or rejected."""
    registry = Registry(data.workspace.registry_path)
    spec = registry.get(name)
    model = get_kind(spec["kind"])(**spec["params"])
    start, end = data.split.train_range(model.fit_days())
    progress(0.0, f"reading the {model.fit_inputs} of days {start}..{end}")
    train = on_sale(training_frame(data, model, start, end, for_fit=True))
    started = time.monotonic()
    model.fit(train, part(progress, *FIT_PART))
    duration = time.monotonic() - started
    progress(FIT_PART[1], "saving the version")
    return _register(data, name, model, (start, end), duration, manual=manual, force=force, actor=actor,
                     run_id=run_id, notebook=notebook, reason=reason, progress=progress)


def _register(data: WorkspaceData, name: str, model: ForecastModel, train_range: tuple[int, int],
              duration: float, *, manual: bool, force: bool, actor: str, run_id: str | None,
              notebook: str | None, reason: str = "", progress: Progress = no_progress) -> TrainedVersion:
    """Save the artifact, then let the gate register the version; no artifact is left if that fails."""
    from m5ops.pipeline import gate  # late: the gate scores with this module's helpers

    registry = Registry(data.workspace.registry_path)
    version_id = registry.next_version_id(name)
    artifact = _save_artifact(data.workspace, model, name, version_id)
    summary = model.training_summary
    start, end = train_range
    record = {"id": version_id, "sim_date": data.sim_date, "sim_day": data.split.today, "cutoff_day": end,
              "rows": int(summary.rows), "duration_s": round(duration, 3),
              "artifact": str(artifact.relative_to(data.workspace.home)),
              "metrics": {"train_days": end - start + 1, "features": len(summary.features)},
              "lineage": version_lineage(train_range=train_range, rows=summary.rows, params=model.get_params(),
                                         features=summary.features, duration_s=duration, run_id=run_id,
                                         notebook=notebook, reason=reason, backtest={})}
    progress(GATE_AT, "the gate scores the new and the current version on the test window")
    try:
        version_id, verdict = gate.admit(data, name, model, record, force=force, manual=manual, actor=actor)
    except Exception:
        shutil.rmtree(artifact, ignore_errors=True)  # the version was never registered
        raise
    log.info("trained %s %s on days %d..%d: %d rows in %.1fs; %s", name, version_id, start, end, record["rows"],
             duration, verdict.action)
    record = find_version(registry.get(name), version_id)
    return TrainedVersion(model, version_id, record, verdict)


def training_frame(data: WorkspaceData, model: ForecastModel, start: int, end: int,
                   for_fit: bool = False) -> pd.DataFrame:
    """What ``model``'s fit reads over days start..end: the feature rows, or only the sales.

    A kind that fits on a Dask cluster (``fit_inputs = "feature_store"``) gets, ``for_fit``, the
    feature store as a ``dask.dataframe``; every other caller (the in-sample plot) the rows here.
    """
    if model.fit_inputs == "features" or model.fit_inputs == "feature_store" and not for_fit:
        return data.features.read(start, end, data.series)
    if model.fit_inputs == "sales":
        return sales_frame(data.store, start, end)
    if model.fit_inputs == "feature_store":  # read on the cluster, by its workers
        return data.features.to_dask(start, end, data.series)
    raise ModelError(f"kind {model.kind!r} declares fit_inputs={model.fit_inputs!r}; "
                     f"declare 'features' or 'sales' in its class")


def sales_frame(store: DayStore, start: int, end: int) -> pd.DataFrame:
    """Long rows (series, day, sales, sell_price) of days start..end from the day store, day by day."""
    sales, prices = store.read_matrix(start, end)
    n_series, n_days = sales.shape
    return pd.DataFrame({
        "series": np.tile(np.arange(n_series, dtype=np.int32), n_days),
        "day": np.repeat(np.arange(start, end + 1, dtype=np.int32), n_series),
        "sales": sales.T.ravel(), "sell_price": prices.T.ravel(),
    })


def on_sale(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of days when the item had a price: before its launch a zero says nothing about demand."""
    return frame[frame["sell_price"].notnull()]  # notnull: pandas and dask.dataframe both have it


def _save_artifact(workspace: Workspace, model: ForecastModel, name: str, version_id: str):
    """Save into a temporary folder, then rename: a crash never leaves a half-written version."""
    final = workspace.models_dir / name / version_id
    staging = final.with_name(f".{version_id}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging)
    shutil.rmtree(final, ignore_errors=True)  # left by a crash after rename, before registration
    staging.rename(final)
    return final


def in_sample_fit(data: WorkspaceData, model: ForecastModel, cutoff_day: int, days: int = 28) -> pd.DataFrame:
    """Actual and fitted total units of the last ``days`` training days (how well the model fits)."""
    start = cutoff_day - days + 1
    frame = training_frame(data, model, start, cutoff_day)
    recent, _ = data.store.read_matrix(max(data.store.first_day(), start - RECENT_DAYS), start - 1)
    inp = ForecastInput(frame, recent, start)
    fitted = model.predict(inp)
    totals = pd.DataFrame({"day": frame["day"].to_numpy(), "actual": frame["sales"].to_numpy(), "fitted": fitted})
    totals = totals.groupby("day").sum()
    totals.index = day_date(totals.index.to_numpy())
    return totals


def load_current(data: WorkspaceData, name: str) -> tuple[ForecastModel, dict] | None:
    """A model's current version, loaded, with its record (None if never trained)."""
    registry = Registry(data.workspace.registry_path)
    version = registry.current(name)
    if version is None:
        return None
    return ForecastModel.load(data.workspace.home / version["artifact"]), version


def test_input(data: WorkspaceData) -> ForecastInput:
    """The test window's feature rows and the sales just before it."""
    start, end = data.split.test_range()
    frame = data.features.read(start, end, data.series).sort_values(["series", "day"], kind="stable")
    recent, _ = data.store.read_matrix(max(data.store.first_day(), start - RECENT_DAYS), start - 1)
    return ForecastInput(frame.reset_index(drop=True), recent, start)


def forecast_matrix(model: ForecastModel, inp: ForecastInput, n_series: int) -> np.ndarray:
    """Predictions of the window as (n_series, n_days), rows in series order."""
    predicted = model.predict(inp)
    days = inp.features["day"].to_numpy() - inp.start_day
    matrix = np.zeros((n_series, int(days.max()) + 1))
    matrix[inp.features["series"].to_numpy(), days] = predicted
    return matrix


def actual_matrix(inp: ForecastInput, n_series: int) -> np.ndarray:
    """Actual sales of the window as (n_series, n_days)."""
    days = inp.features["day"].to_numpy() - inp.start_day
    matrix = np.zeros((n_series, int(days.max()) + 1))
    matrix[inp.features["series"].to_numpy(), days] = inp.features["sales"].to_numpy()
    return matrix


def wrmsse_for(data: WorkspaceData, cutoff: int | None = None) -> WRMSSE:
    """M5's WRMSSE of a forecast of the days after ``cutoff`` (default: the day before the test window)."""
    if cutoff is None:
        cutoff = data.split.test_range()[0] - 1
    return wrmsse_at(data.workspace, cutoff, store=data.store, series=data.series)


def level_column(key: str) -> str:
    """The column of ``score_models`` holding the WRMSSE of level ``key`` ('1'..'12')."""
    return f"wrmsse_{key}"


def excluded_column(key: str) -> str:
    """The column of ``score_models`` holding how many nodes level ``key`` left out ('all' for all levels)."""
    return f"excluded_{key}"


def score_models(data: WorkspaceData, names: list[str], progress: Progress = no_progress) -> pd.DataFrame:
    """Every named model's current version scored on the test window: one row per model.

    Columns: model, version, the metrics of ``METRICS`` (None where undefined), the WRMSSE of
    each level (``level_column``) and the nodes each level left out for lack of a scale
    (``excluded_column``, 'all' for their sum).
    """
    progress(0.0, "reading the test window")
    inp = test_input(data)
    actual = actual_matrix(inp, len(data.series))
    wrmsse = wrmsse_for(data)
    rows = []
    for done, name in enumerate(names):
        progress(0.1 + 0.9 * done / len(names), f"scoring {name} ({done + 1} of {len(names)})")
        loaded = load_current(data, name)
        if loaded is None:
            log.info("skipping %s: no version yet", name)
            continue
        model, version = loaded
        predicted = forecast_matrix(model, inp, len(data.series))
        rows.append({"model": name, "version": version["id"], **evaluate_forecast(actual, predicted),
                     **_wrmsse_columns(wrmsse.score(actual, predicted))})
    return pd.DataFrame(rows)


def _wrmsse_columns(score: WRMSSEScore) -> dict:
    """The overall WRMSSE, each level's and the nodes left out, as ``score_models`` columns."""
    columns = {}
    for key, (value, excluded) in score.by_key().items():
        columns["wrmsse" if key == OVERALL else level_column(key)] = value
        columns[excluded_column(key)] = excluded
    return columns
