"""Kind ``hist_gb``: scikit-learn's HistGradientBoostingRegressor with a Poisson loss.

A second, independent gradient-boosting implementation to compare with LightGBM. The ids enter
as codes under the categories seen in training (kept with the model, so prediction maps them the
same way); ids with at most ``MAX_CATEGORIES`` observed levels are declared categorical, larger
ones (M5 has 3049 items) stay ordinal codes, since the estimator refuses more levels than bins.
Missing lags and prices are left as NaN: the estimator routes them natively.

Memory: scikit-learn converts the matrix to float64, and with categorical features its
preprocessor (a ColumnTransformer) holds the float64 numeric and id columns and their float64
concatenation at once: ~0.5 KB per training row at the fit's peak, 11.9 GiB at the full M5 shape
(21.5M rows of 730 days). A fit therefore uses at most ``max_rows`` rows, a seeded uniform sample
of the window when it holds more (``bench/README.md``, ``bench_full_loop.py``): the window keeps
its two years of seasons, the peak stays near 6.5 GiB at the full shape.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from m5ops.models.base import (
    CATEGORICALS, FEATURES, TARGET, ForecastInput, ForecastModel, artifact_file, prediction_threads,
    require,
)
from m5ops.models.params import Param, ParamSchema

ARTIFACT = "model.joblib"
MAX_CATEGORIES = 255  # the estimator's max_bins
log = logging.getLogger("m5ops.models.hist_gb")


class HistGBModel(ForecastModel):
    """HistGradientBoostingRegressor(loss="poisson") on the same features as LightGBM."""

    kind = "hist_gb"
    description = "scikit-learn HistGradientBoostingRegressor, Poisson loss, direct 28-day forecasts."
    schema = ParamSchema([
        Param("max_iter", int, 300, low=1, high=10000, help="Boosting iterations (trees)."),
        Param("learning_rate", float, 0.05, low=1e-4, high=1.0, help="Shrinkage per tree."),
        Param("max_leaf_nodes", int, 63, low=2, high=4096, help="Leaves per tree."),
        Param("min_samples_leaf", int, 100, low=1, high=100000, help="Minimum rows per leaf."),
        Param("l2_regularization", float, 0.1, low=0.0, high=1000.0,
              help="L2 regularisation of leaf values."),
        Param("train_days", int, 730, low=28, high=3000, help="Train on the last N days of the train split."),
        Param("max_rows", int, 8_000_000, low=1_000, high=10**9,
              help="Fit on at most this many rows (a seeded uniform sample of the window): "
                   "the fit's peak memory is ~0.5 KB per row."),
        Param("num_threads", int, 2, low=1, high=256, help="OpenMP threads for training and prediction."),
        Param("seed", int, 42, low=0, high=2**31 - 1, help="Random state of the estimator."),
    ])

    def _matrix(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """Float32 matrix of ``rows`` (default all): the numeric features, then the id codes (unseen id -> NaN).

        Filled column by column into one allocation: no float32 copy of the whole frame beside it.
        """
        n = len(frame) if rows is None else len(rows)
        matrix = np.empty((n, len(FEATURES) + len(CATEGORICALS)), dtype=np.float32)
        for j, col in enumerate(FEATURES):
            values = frame[col].to_numpy()
            matrix[:, j] = values if rows is None else values[rows]
        for j, col in enumerate(CATEGORICALS, start=len(FEATURES)):
            codes = pd.Categorical(frame[col], categories=self.categories_[col]).codes
            codes = codes if rows is None else codes[rows]
            matrix[:, j] = np.where(codes < 0, np.nan, codes)
        return matrix

    def _sample(self, n_rows: int) -> np.ndarray | None:
        """Sorted row positions of a seeded uniform sample of ``max_rows`` rows; None to fit on all."""
        if n_rows <= self.max_rows:
            return None
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(n_rows, size=self.max_rows, replace=False))
        log.info("hist_gb fits on a sample of %d of the window's %d rows (max_rows)", self.max_rows, n_rows)
        return rows

    def _fit(self, train: pd.DataFrame) -> None:
        """Fit the estimator under a thread limit (the machine is shared)."""
        sklearn_ensemble = require("sklearn.ensemble", "scikit-learn>=1.5")
        threadpoolctl = require("threadpoolctl", "threadpoolctl")
        self.categories_ = {col: list(train[col].astype("category").cat.categories) for col in CATEGORICALS}
        rows = self._sample(len(train))
        X = self._matrix(train, rows)
        y = train[TARGET].to_numpy(dtype=np.float64)
        y = y if rows is None else y[rows]
        self.fitted_rows_ = len(y)  # the rows the estimator saw (training_summary.rows: the window's)
        del rows
        # A feature with no history yet (rmean_56 on a short train split) is all NaN, which the
        # estimator's binning cannot handle; as a constant it carries the same (no) information.
        X[:, np.isnan(X).all(axis=0)] = 0.0
        n_levels = [len(np.unique(col[~np.isnan(col)])) for col in X[:, len(FEATURES):].T]
        self.categorical_ = [False] * len(FEATURES) + [n <= MAX_CATEGORIES for n in n_levels]
        self.estimator_ = sklearn_ensemble.HistGradientBoostingRegressor(
            loss="poisson", learning_rate=self.learning_rate, max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, categorical_features=np.array(self.categorical_),
            # No early stopping: it would hold out a random 10% and make the fit depend on it.
            early_stopping=False, random_state=self.seed,
        )
        with threadpoolctl.threadpool_limits(limits=self.num_threads, user_api="openmp"):
            self.estimator_.fit(X, y)

    def _predict(self, inp: ForecastInput) -> np.ndarray:
        """Estimator output on the features, under the thread limit (fewer threads for a small batch)."""
        threadpoolctl = require("threadpoolctl", "threadpoolctl")
        threads = prediction_threads(len(inp.features), self.num_threads)
        with threadpoolctl.threadpool_limits(limits=threads, user_api="openmp"):
            return self.estimator_.predict(self._matrix(inp.features))

    def _save_artifact(self, directory: Path) -> None:
        """The fitted estimator and the id levels, with joblib (scikit-learn's own advice)."""
        joblib = require("joblib", "joblib")
        state = {"estimator": self.estimator_, "categories": self.categories_,
                 "categorical": self.categorical_}
        joblib.dump(state, directory / ARTIFACT)

    def _load_artifact(self, directory: Path) -> None:
        """Read back the estimator and id levels (our own files only: joblib runs pickle)."""
        joblib = require("joblib", "joblib")
        state = joblib.load(artifact_file(directory, ARTIFACT))
        self.estimator_, self.categories_, self.categorical_ = (
            state["estimator"], state["categories"], state["categorical"],
        )
