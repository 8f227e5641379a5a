"""Drift of each current version: its features and target now against its training window.

The reference is the version's training window (from its lineage), the current data the last
``CURRENT_DAYS`` days. Both sides are a fixed, seeded sample, so the cost is bounded whatever the
workspace's size: the same ``SAMPLE_SERIES`` series on both sides (so the mix of ids only moves
when items go on or off sale), every current day, and ``REFERENCE_WEEKS`` whole weeks drawn from
the training window with a seed of that window (the same weeks on every evaluation of a version,
so its figures are comparable from day to day). Whole weeks keep the weekday mix of both sides
the same (sales follow the weekday strongly: single days drawn at random would make the target
"drift" by their weekdays alone), and each is one read of the feature store. Only rows of items
on sale count, as in training.
Calendar features are left out: a month always "drifts" against a year.

A version's reference sample never changes (its window and weeks are fixed), so the first
evaluation keeps it beside the version's artifact (``REFERENCE_SAMPLE``, a derived file: deleted,
it is read again) and later ones read one file instead of ``REFERENCE_WEEKS`` weeks of day files.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from m5ops.data.features import CALENDAR_FEATURES, CATEGORICAL_COLUMNS, FEATURE_COLUMNS
from m5ops.data.schema import HORIZON, day_label
from m5ops.errors import ParameterError
from m5ops.evaluation.drift import ColumnDrift, band, frame_drift
from m5ops.models import get_kind
from m5ops.models.base import TARGET
from m5ops.pipeline.modeling import WorkspaceData
from m5ops.stores.atomic import atomic_path
from m5ops.stores.drift import DriftStore
from m5ops.stores.registry import Registry, current_version

log = logging.getLogger("m5ops.pipeline.drift")
SEED = 20110129  # the first day of M5: any fixed number would do
SAMPLE_SERIES = 1000
REFERENCE_WEEKS = 8
WEEK = 7
CURRENT_DAYS = HORIZON
REFERENCE_SAMPLE = "drift_reference.parquet"


@dataclass(frozen=True)
class VersionDrift:
    """The drift of one version on one day: the windows compared and each column's statistics."""

    model: str
    version: str
    sim_day: int
    reference: tuple[int, int]
    current: tuple[int, int]
    columns: list[ColumnDrift]

    @property
    def target(self) -> ColumnDrift:
        return next(c for c in self.columns if c.is_target)


def drift_columns(kind: str) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns of a kind's inputs whose drift is measured: no calendar feature."""
    inputs = get_kind(kind).inputs
    numeric = [c for c in FEATURE_COLUMNS if c in inputs and c not in CALENDAR_FEATURES]
    return numeric, [c for c in CATEGORICAL_COLUMNS if c in inputs]


def training_window(version: dict, first_day: int) -> tuple[int, int]:
    """The days a version learned from: its lineage's, else from the first stored day to its cutoff."""
    lineage = version.get("lineage") or {}
    end = int(lineage.get("data_cutoff_day", version["cutoff_day"]))
    start = int(lineage.get("train_start_day", first_day))
    return max(start, first_day), end


def sample_series(n_series: int, size: int = SAMPLE_SERIES) -> np.ndarray:
    """A fixed seeded sample of series indices (all of them when there are fewer), ascending."""
    if n_series <= size:
        return np.arange(n_series)
    return np.sort(np.random.default_rng(SEED).choice(n_series, size, replace=False))


def sample_weeks(start: int, end: int, weeks: int = REFERENCE_WEEKS) -> list[tuple[int, int]]:
    """A fixed sample of whole weeks of start..end (counted back from ``end``), seeded by the window, oldest first.

    A window of at most ``weeks`` weeks is taken whole, as one range.
    """
    if end - start + 1 <= weeks * WEEK:
        return [(start, end)]
    whole = (end - start + 1) // WEEK
    chosen = np.sort(np.random.default_rng([SEED, start, end]).choice(whole, weeks, replace=False))[::-1]
    return [(end - WEEK * (k + 1) + 1, end - WEEK * k) for k in (int(k) for k in chosen)]


class SampleReader:
    """Sampled feature rows of ranges of days, each range read once per evaluation (models share the last days)."""

    def __init__(self, data: WorkspaceData, series_size: int = SAMPLE_SERIES):
        self.data = data
        self.keep = np.zeros(len(data.series), dtype=bool)
        self.keep[sample_series(len(data.series), series_size)] = True
        self.columns = sorted({TARGET, "sell_price", *FEATURE_COLUMNS} - set(CALENDAR_FEATURES))
        self._ranges: dict[tuple[int, int], pd.DataFrame] = {}

    def rows(self, ranges: list[tuple[int, int]]) -> pd.DataFrame:
        """The sampled series' rows of the days of ``ranges`` that were on sale."""
        for days in (r for r in ranges if r not in self._ranges):
            frame = self.data.features.read(*days, self.data.series, self.columns)
            keep = self.keep[frame["series"].to_numpy()] & frame["sell_price"].notna().to_numpy()
            self._ranges[days] = frame[keep]
        return pd.concat([self._ranges[r] for r in ranges], ignore_index=True)

    def kept_rows(self, path: Path, ranges: list[tuple[int, int]]) -> pd.DataFrame:
        """``rows(ranges)``, kept at ``path``: read from it when it holds these ranges and columns."""
        key = f"{int(self.keep.sum())} of {len(self.keep)} series; " + ";".join(f"{a}-{b}" for a, b in ranges)
        try:
            kept = pq.read_table(path)
            meta = kept.schema.metadata or {}
            if meta.get(b"m5ops.ranges") == key.encode() and set(self.columns) <= set(kept.column_names):
                return kept.to_pandas()
        except (OSError, pa.ArrowInvalid):  # absent or unreadable: read the days again and keep them
            pass
        frame = self.rows(ranges)
        if path.parent.is_dir():  # the version's folder; gone (retention) means nothing to keep it in
            table = pa.Table.from_pandas(frame, preserve_index=False)
            metadata = {**(table.schema.metadata or {}), b"m5ops.ranges": key.encode()}
            with atomic_path(path) as tmp:
                pq.write_table(table.replace_schema_metadata(metadata), tmp)
        return frame


def version_drift(data: WorkspaceData, name: str, model: dict, version: dict, reader: SampleReader) -> VersionDrift:
    """One version's drift today: the sampled training window against the sampled last days."""
    first = data.store.first_day()
    reference = training_window(version, first)
    current = (max(first, data.split.today - CURRENT_DAYS + 1), data.split.today)
    numeric, categorical = drift_columns(model["kind"])
    kept = data.workspace.home / version["artifact"] / REFERENCE_SAMPLE
    columns = frame_drift(reader.kept_rows(kept, sample_weeks(*reference)), reader.rows([current]),
                          numeric, categorical, TARGET)
    return VersionDrift(name, version["id"], data.split.today, reference, current, columns)


def current_drift(data: WorkspaceData, names: list[str]) -> list[VersionDrift]:
    """The drift of every named model's current version (models without one are skipped)."""
    models = Registry(data.workspace.registry_path).models()
    reader, found = SampleReader(data), []
    for name in names:
        model = models.get(name)
        version = current_version(model) if model else None
        if version is None:
            continue
        found.append(version_drift(data, name, model, version, reader))
    return found


def record_drift(data: WorkspaceData, names: list[str], run_id: str | None = None) -> list[VersionDrift]:
    """Compute and store the drift of the named models' current versions (the evaluation's step)."""
    found = current_drift(data, names)
    store = DriftStore(data.workspace.runs_path)
    for drift in found:
        store.record(drift.sim_day, drift.model, drift.version, [c.as_dict() for c in drift.columns],
                     drift.reference, drift.current, run_id)
        target = drift.target
        log.info("run %s: %s %s target PSI %s (%s) on %s against %s..%s", run_id, drift.model, drift.version,
                 target.psi, target.band, day_label(drift.sim_day), day_label(drift.reference[0]),
                 day_label(drift.reference[1]))
    return found


def drift_report(workspace, model: str | None = None) -> dict:
    """What ``m5ops drift`` shows: each model's latest drift table and its target's PSI over time.

    Every model of the registry with drift recorded (or only ``model``; an unknown one is refused).
    """
    models = Registry(workspace.registry_path).models()
    if model is not None and model not in models:
        known = ", ".join(sorted(models)) or "none"
        raise ParameterError(f"no model {model!r} (models: {known}); see 'm5ops models'")
    store = DriftStore(workspace.runs_path)
    latest, history = store.latest(model), store.target_history(model)
    report = {}
    for name, rows in latest.groupby("model", sort=True):
        if name not in models:
            continue  # deleted: its drift stays in runs.db, out of the report
        first = rows.iloc[0]
        report[name] = {
            "version": first["version"], "sim_day": int(first["sim_day"]),
            "reference": [int(first["reference_start"]), int(first["reference_end"])],
            "current": [int(first["current_start"]), int(first["current_end"])],
            "columns": [_column_row(r) for r in rows.to_dict("records")],
            "target_history": [{"sim_day": int(r["sim_day"]), "version": r["version"], "psi": _value(r["psi"])}
                               for r in history[history["model"] == name].to_dict("records")],
        }
    return report


def _column_row(row: dict) -> dict:
    """One stored drift row as plain JSON values, with its band."""
    psi = _value(row["psi"])
    return {"column": row["column"], "kind": row["kind"], "target": bool(row["is_target"]), "psi": psi,
            "band": band(psi), "wasserstein": _value(row["wasserstein"]),
            "jensen_shannon": _value(row["jensen_shannon"]), "n_reference": int(row["n_reference"]),
            "n_current": int(row["n_current"])}


def _value(x) -> float | None:
    """A stored statistic: None for NULL (NaN in the frame)."""
    return None if x is None or x != x else float(x)
