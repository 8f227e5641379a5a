"""Kind ``hist_gb``: scikit-learn's HistGradientBoostingRegressor with a Poisson loss.

A second, independent gradient-boosting implementation to compare with LightGBM. The ids enter
as codes under the categories seen in training (kept with the model, so prediction maps them the
same way); ids with at most ``MAX_CATEGORIES`` observed levels are declared categorical, larger
ones (M5 has 3049 items) stay ordinal codes, since the estimator refuses more levels than bins.
Missing lags and prices are left as NaN: the estimator routes them natively.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from m5ops.models.base import (
    CATEGORICALS, FEATURES, TARGET, ForecastInput, ForecastModel, artifact_file, require,
)
from m5ops.models.params import Param, ParamSchema

ARTIFACT = "model.joblib"
MAX_CATEGORIES = 255  # the estimator's max_bins


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
        Param("num_threads", int, 2, low=1, high=256, help="OpenMP threads for training and prediction."),
        Param("seed", int, 42, low=0, high=2**31 - 1, help="Random state of the estimator."),
    ])

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Float32 matrix: the numeric features, then the id codes (unseen id -> NaN)."""
        numeric = frame[FEATURES].to_numpy(dtype=np.float32)
        codes = [
            pd.Categorical(frame[col], categories=self.categories_[col]).codes.astype(np.float32)
            for col in CATEGORICALS
        ]
        ids = np.column_stack(codes) if codes else np.empty((len(frame), 0), np.float32)
        ids[ids < 0] = np.nan
        return np.hstack([numeric, ids])

    def _fit(self, train: pd.DataFrame) -> None:
        """Fit the estimator under a thread limit (the machine is shared)."""
        sklearn_ensemble = require("sklearn.ensemble", "scikit-learn>=1.5")
        threadpoolctl = require("threadpoolctl", "threadpoolctl")
        self.categories_ = {col: list(train[col].astype("category").cat.categories) for col in CATEGORICALS}
        X = self._matrix(train)
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
            self.estimator_.fit(X, train[TARGET].to_numpy(dtype=np.float64))

    def _predict(self, inp: ForecastInput) -> np.ndarray:
        """Estimator output on the features, under the same thread limit."""
        threadpoolctl = require("threadpoolctl", "threadpoolctl")
        with threadpoolctl.threadpool_limits(limits=self.num_threads, user_api="openmp"):
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
