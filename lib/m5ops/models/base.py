"""The fixed frame every model kind runs in: parameters, fit, predict, save and load.

A kind is a subclass that declares ``kind``, ``schema`` and ``description`` and fills in
``_fit``, ``_predict`` and, if it has one, ``_save_artifact``/``_load_artifact``. The base
validates parameters and frames, selects the training days, times the fit, clips forecasts at
zero and writes ``model.json`` (kind, params, format version, training summary), so every kind
is trained, saved, loaded and scored the same way (the scikit-learn estimator contract).
"""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from m5ops import __version__
from m5ops.data.features import CATEGORICAL_COLUMNS, FEATURE_COLUMNS
from m5ops.data.schema import HORIZON
from m5ops.errors import ArtifactError, DataError, NotFittedError
from m5ops.models.params import ParamSchema
from m5ops.stores.atomic import write_json_atomic
from m5ops.models.progress import Progress, no_progress

# The feature frame contract: the names derive from the feature declarations that build it.
FEATURES = FEATURE_COLUMNS
CATEGORICALS = CATEGORICAL_COLUMNS
TARGET = "sales"
MODEL_FILE = "model.json"
# Below this many rows per thread a prediction runs on fewer threads. A boosted model predicts
# tree by tree, one OpenMP parallel region each (300 for hist_gb): on a small batch a region
# lasts microseconds, and whenever any other thread wants a core (another OpenMP runtime's
# spinning threads, a kernel's I/O), the region's barrier waits out a scheduler slice, which
# made a 210-series evaluation 3-20x slower in a notebook kernel than in a quiet process.
PREDICTION_ROWS_PER_THREAD = 100_000
FORMAT_VERSION = 1


@dataclass
class ForecastInput:
    """What a forecast needs: the rows to predict and the sales just before the window.

    ``recent_sales[i, j]`` is the sales of series ``i`` on day ``start_day - k + j``
    (``k = recent_sales.shape[1] >= HORIZON``), so the last column is the day before the window.
    """

    features: pd.DataFrame
    recent_sales: np.ndarray
    start_day: int

    def __post_init__(self):
        """Refuse inputs that would silently give wrong forecasts."""
        self.recent_sales = np.asarray(self.recent_sales, dtype=np.float64)
        if self.recent_sales.ndim != 2 or self.recent_sales.shape[1] < HORIZON:
            raise DataError(
                f"recent_sales must be (n_series, k >= {HORIZON}) but has shape "
                f"{self.recent_sales.shape}; pass at least the {HORIZON} days before start_day"
            )
        if not np.isfinite(self.recent_sales).all():
            raise DataError("recent_sales contains NaN or inf; sales must be known for every day")
        self._check_rows()

    def _check_rows(self):
        """Every row's series must exist and its day must not precede the window."""
        frame = self.features
        if len(frame) and "series" in frame and frame["series"].max() >= len(self.recent_sales):
            raise DataError(
                f"features name series {int(frame['series'].max())} but recent_sales has only "
                f"{len(self.recent_sales)} rows; build both from the same data set"
            )
        if len(frame) and "day" in frame and frame["day"].min() < self.start_day:
            raise DataError(
                f"features include day {int(frame['day'].min())}, before the window start "
                f"{self.start_day}; forecast only days >= start_day"
            )

    @classmethod
    def from_dataset(cls, features: pd.DataFrame, dataset, start_day: int,
                     history: int = HORIZON) -> "ForecastInput":
        """The input for a window starting at ``start_day``, with ``history`` days of sales."""
        past = dataset.day_slice(start_day - history, start_day - 1)
        return cls(features, past.sales, start_day)


@dataclass(frozen=True)
class TrainingSummary:
    """What a fit used: rows, features, the days covered and how long it took."""

    rows: int
    features: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    first_day: int | None = None
    last_day: int | None = None

    def as_dict(self) -> dict:
        """Plain JSON-ready dict (for model.json and the registry)."""
        return asdict(self)


class ForecastModel:
    """Base of every model kind: validated parameters as attributes, fit/predict/save/load."""

    kind: ClassVar[str] = ""
    schema: ClassVar[ParamSchema] = ParamSchema([])
    description: ClassVar[str] = ""
    # Columns of the feature frame that predict reads (fit also reads TARGET and day).
    inputs: ClassVar[list[str]] = FEATURES + CATEGORICALS
    # What fit is given: "features", the feature frame of the training days; or "sales", only
    # series, day, TARGET and sell_price of the last ``fit_days()`` days, read from the day store
    # (for kinds that learn nothing from features: reading 30,490 series' features costs minutes).
    fit_inputs: ClassVar[str] = "features"
    _progress: Progress = staticmethod(no_progress)  # the fit's report, while fit runs

    def __init__(self, **params):
        for name, value in self.schema.validate(params).items():
            setattr(self, name, value)
        self.training_summary: TrainingSummary | None = None

    def get_params(self) -> dict:
        """The current parameter values, by name."""
        return {name: getattr(self, name) for name in self.schema.names()}

    def set_params(self, **params) -> "ForecastModel":
        """Change parameters (validated now, as in __init__); returns self."""
        for name, value in self.schema.validate({**self.get_params(), **params}).items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return self.training_summary is not None

    def fit(self, train: pd.DataFrame, progress: Progress = no_progress) -> "ForecastModel":
        """Train on the feature frame ``train`` (its last ``train_days`` days, if the kind has it).

        ``progress(fraction, note)`` hears how far the fit got, from kinds that can tell
        (LightGBM per boosting round); every kind reports its start and its end.
        """
        # Attributes may have been reassigned since __init__ (sklearn habit): check them again.
        self.set_params()
        rows = self._training_rows(train)
        started = time.perf_counter()
        progress(0.0, f"fitting {self.kind} on {len(rows):,} rows")
        self._progress = progress
        try:
            self._fit(rows)
        finally:
            self._progress = no_progress
        progress(1.0, f"fitted {self.kind} in {time.perf_counter() - started:.1f} s")
        self.training_summary = TrainingSummary(
            rows=len(rows), features=list(self.inputs),
            duration_s=round(time.perf_counter() - started, 3),
            first_day=int(rows["day"].min()) if len(rows) else None,
            last_day=int(rows["day"].max()) if len(rows) else None,
        )
        return self

    def report(self, fraction: float, note: str) -> None:
        """For a kind's ``_fit``: how far the fit got (0 to 1), shown while the run is running."""
        self._progress(fraction, note)

    def fit_days(self) -> int | None:
        """How many days before the cutoff fit reads: ``train_days`` if the kind has it, else all (None)."""
        return getattr(self, "train_days", None)

    def _training_rows(self, train: pd.DataFrame) -> pd.DataFrame:
        """The checked rows a fit uses: all of them, or the last ``train_days`` days."""
        check_columns(train, list(dict.fromkeys(["day", TARGET, *self.inputs])), "training frame")
        target = train[TARGET].to_numpy(dtype=np.float64)
        if not (np.isfinite(target).all() and (target >= 0).all()):
            raise DataError(f"training column {TARGET!r} has NaN, inf or negative values")
        if "train_days" in self.schema and len(train):
            first = train["day"].max() - self.train_days + 1
            if train["day"].min() < first:  # a copy only when rows go: at 21M rows a copy is 1.6 GiB
                train = train[train["day"] >= first]
        if not len(train) and self._needs_rows():
            raise DataError(f"{self.kind}: the training frame has no rows; train on at least one day")
        return train

    def _needs_rows(self) -> bool:
        """Whether fit needs at least one row (learned models do; baselines do not)."""
        return True

    def predict(self, inp: ForecastInput) -> np.ndarray:
        """Forecasts aligned with ``inp.features`` rows, clipped at zero; no side effects."""
        if not self.is_fitted:
            raise NotFittedError(
                f"this {self.kind} model is not fitted; call fit(train) or "
                f"{type(self).__name__}.load(directory) first"
            )
        check_columns(inp.features, self.inputs, "forecast features")
        if not len(inp.features):
            return np.zeros(0)
        forecast = np.asarray(self._predict(inp), dtype=np.float64).reshape(-1)
        # Demand cannot be negative; regressors and averages of deltas can still dip below 0.
        return np.clip(forecast, 0.0, None)

    def feature_importance(self) -> pd.Series | None:
        """Importance per feature, largest first; None when the kind has no such notion."""
        return None

    def save(self, directory: Path | str) -> Path:
        """Write the artifact, then ``model.json`` last: its presence marks a complete save."""
        if not self.is_fitted:
            raise NotFittedError(f"this {self.kind} model is not fitted; fit it before saving")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_artifact(directory)
        meta = {
            "format_version": FORMAT_VERSION, "kind": self.kind, "params": self.get_params(),
            "training_summary": self.training_summary.as_dict(), "m5ops_version": __version__,
        }
        write_json_atomic(directory / MODEL_FILE, meta, sort_keys=True)
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> "ForecastModel":
        """The model saved in ``directory``, as an instance of its kind."""
        directory = Path(directory)
        meta = read_model_meta(directory)
        kind_cls = cls._kind_class(meta["kind"], directory)
        model = kind_cls(**meta["params"])
        model._load_artifact(directory)
        model.training_summary = TrainingSummary(**meta["training_summary"])
        return model

    @classmethod
    def _kind_class(cls, kind: str, directory: Path) -> type["ForecastModel"]:
        """The class for a saved kind: the registry's, or ``cls`` itself if it matches."""
        if cls.kind and cls.kind != kind:
            raise ArtifactError(
                f"{directory} holds a {kind!r} model, not {cls.kind!r}; load it with ForecastModel.load"
            )
        from m5ops.models import get_kind  # late: the registry imports this module

        return cls if cls.kind else get_kind(kind)

    # What a kind fills in -------------------------------------------------------------
    def _fit(self, train: pd.DataFrame) -> None:
        raise NotImplementedError

    def _predict(self, inp: ForecastInput) -> np.ndarray:
        raise NotImplementedError

    def _save_artifact(self, directory: Path) -> None:
        """Write the kind's own files (none by default)."""

    def _load_artifact(self, directory: Path) -> None:
        """Read back what ``_save_artifact`` wrote (nothing by default)."""


def prediction_threads(rows: int, limit: int) -> int:
    """Threads for predicting ``rows`` rows: one per ``PREDICTION_ROWS_PER_THREAD``, from 1 to ``limit``."""
    return max(1, min(limit, rows // PREDICTION_ROWS_PER_THREAD))


def check_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    """A DataError naming the columns a frame lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"the {what} lacks column(s) {missing}; build it with m5ops.data.features")


def feature_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The model columns of a feature frame, with the ids as pandas categoricals, sharing its memory.

    No copy: at the full M5 shape (~21M training rows) a copy is ~1.4 GiB at the peak of a fit,
    on top of the float32 matrix LightGBM makes anyway. Read it, never change it in place.
    """
    columns = {col: frame[col] for col in FEATURES}
    for col in CATEGORICALS:
        # Parquet or hand-built frames may carry ids as strings; trees need categoricals.
        values = frame[col]
        columns[col] = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    return pd.DataFrame(columns, copy=False)


def read_model_meta(directory: Path) -> dict:
    """The checked contents of ``directory/model.json``; a ArtifactError says what is wrong."""
    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{path} does not exist: {directory} is not a saved model (or its save was interrupted)"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is unreadable ({exc}); retrain the model to replace it") from exc
    missing = {"format_version", "kind", "params", "training_summary"} - set(meta)
    if missing:
        raise ArtifactError(f"{path} lacks {sorted(missing)}; retrain the model to replace it")
    if meta["format_version"] > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format version {meta['format_version']}, newer than this m5ops "
            f"({FORMAT_VERSION}); upgrade m5ops to load it"
        )
    return meta


def artifact_file(directory: Path, name: str) -> Path:
    """``directory/name``, which must exist: a ArtifactError if the save is incomplete."""
    path = Path(directory) / name
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: the saved model is incomplete; retrain it")
    return path


def require(module: str, install: str):
    """Import an optional dependency, or an ImportError that gives the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is not installed; install it with: pip install '{install}'") from exc
