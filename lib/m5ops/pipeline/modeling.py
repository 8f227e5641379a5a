"""Training a model version and scoring versions on the test window, on a workspace's data."""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from m5ops.data.feature_store import FeatureStore
from m5ops.data.schema import RECENT_DAYS, day_date
from m5ops.data.split import Split
from m5ops.data.store import DayStore
from m5ops.evaluation.metrics import evaluate_forecast
from m5ops.models import ForecastInput, ForecastModel, get_kind
from m5ops.models.progress import Progress, no_progress, part
from m5ops.stores.registry import Registry
from m5ops.stores.layout import Workspace
from m5ops.evaluation.wrmsse import WRMSSE

FIT_PART = (0.10, 0.95)  # of a training's progress: reading the features before, saving after
log = logging.getLogger("m5ops.pipeline.modeling")
SCALE_DAYS = 730  # history for WRMSSE scales in daily monitoring: bounded so cost stays flat


@dataclass
class WorkspaceData:
    """The stores and the current split of one workspace."""

    workspace: Workspace
    store: DayStore
    features: FeatureStore
    split: Split
    series: pd.DataFrame

    @classmethod
    def open(cls, home) -> "WorkspaceData":
        workspace = Workspace(home).require()
        store = DayStore(workspace.data_dir)
        split = Split(store.first_day(), store.last_day(), workspace.config().test_days)
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


def train_version(data: WorkspaceData, name: str, *, manual: bool = False,
                  progress: Progress = no_progress) -> TrainedVersion:
    """Fit model ``name`` on the train split and register the new version atomically."""
    registry = Registry(data.workspace.registry_path)
    spec = registry.get(name)
    model = get_kind(spec["kind"])(**spec["params"])
    start, end = data.split.train_range(getattr(model, "train_days", None))
    progress(0.0, f"reading the features of days {start}..{end}")
    train = on_sale(data.features.read(start, end, data.series))
    started = time.monotonic()
    model.fit(train, part(progress, *FIT_PART))
    duration = time.monotonic() - started
    progress(FIT_PART[1], "saving the version")
    version_id = registry.next_version_id(name)
    artifact = _save_artifact(data.workspace, model, name, version_id)
    record = {"id": version_id, "sim_date": data.sim_date, "sim_day": data.split.today, "cutoff_day": end,
              "rows": int(model.training_summary.rows), "duration_s": round(duration, 3),
              "artifact": str(artifact.relative_to(data.workspace.home)),
              "metrics": {"train_days": end - start + 1, "features": len(model.training_summary.features)}}
    try:
        registry.add_version(name, record, activate=manual, manual=manual)
    except Exception:
        shutil.rmtree(artifact, ignore_errors=True)  # the version never became current
        raise
    log.info("trained %s %s on days %d..%d: %d rows in %.1fs", name, version_id, start, end, record["rows"], duration)
    return TrainedVersion(model, version_id, record)


def on_sale(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of days when the item had a price: before its launch a zero says nothing about demand."""
    return frame[frame["sell_price"].notna()]


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
    frame = data.features.read(start, cutoff_day, data.series)
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


def wrmsse_for(data: WorkspaceData, scale_days: int | None = SCALE_DAYS) -> WRMSSE:
    """The WRMSSE of the current test window: weights and scales from the days before it."""
    start, _ = data.split.test_range()
    first = data.store.first_day() if scale_days is None else max(data.store.first_day(), start - scale_days)
    sales, prices = data.store.read_matrix(first, start - 1)
    return WRMSSE(data.series, sales, prices)


def score_models(data: WorkspaceData, names: list[str], progress: Progress = no_progress) -> pd.DataFrame:
    """Every named model's current version scored on the test window: one row per model."""
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
        rows.append({"model": name, "version": version["id"], **evaluate_forecast(actual, predicted, wrmsse=wrmsse)})
    return pd.DataFrame(rows)
