"""Kind ``lightgbm``: gradient boosting with a Tweedie objective, the M5 workhorse.

Daily unit sales are counts with many zeros and a long right tail; the Tweedie objective
(variance power between Poisson, 1, and Gamma, 2) fits that shape better than squared error,
which is why most top M5 solutions used it. Training is deterministic (fixed seed,
``deterministic``, row-wise histograms) so that the same data gives the same model.

The defaults (400 rounds of 63 leaves at learning rate 0.05, Tweedie power 1.1, the last 365
days) were chosen on three validation windows of the real M5 slice before its test window
(d_1830..d_1857, d_1858..d_1885, d_1886..d_1913), by WRMSSE relative to seasonal naive; they
also keep a fit at the full M5 shape (~11M rows) near 7 minutes on 2 cores. See bench/README.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from m5ops.models.base import (
    TARGET, ForecastInput, ForecastModel, artifact_file, feature_frame, prediction_threads,
    require,
)
from m5ops.models.params import Param, ParamSchema
from m5ops.models.progress import no_progress

ARTIFACT = "model.txt"


class LightGBMModel(ForecastModel):
    """LightGBM regressor on the lag, rolling, price and calendar features, ids as categoricals."""

    kind = "lightgbm"
    description = ("LightGBM, Tweedie objective: direct 28-day forecasts from lag, rolling, "
                   "price and calendar features.")
    schema = ParamSchema([
        Param("num_boost_round", int, 400, low=1, high=20000, help="Boosting rounds (trees)."),
        Param("learning_rate", float, 0.05, low=1e-4, high=1.0, help="Shrinkage per tree."),
        Param("num_leaves", int, 63, low=2, high=4096, help="Leaves per tree."),
        Param("min_data_in_leaf", int, 100, low=1, high=100000, help="Minimum rows per leaf."),
        Param("feature_fraction", float, 0.8, low=0.05, high=1.0, help="Share of features per tree."),
        Param("bagging_fraction", float, 0.8, low=0.05, high=1.0, help="Share of rows per bagging round."),
        Param("bagging_freq", int, 1, low=0, high=100,
              help="Re-sample rows every N rounds (0 = no bagging)."),
        Param("lambda_l2", float, 0.1, low=0.0, high=1000.0, help="L2 regularisation of leaf values."),
        Param("tweedie_variance_power", float, 1.1, low=1.0, high=1.99,
              help="Tweedie power: 1 = Poisson, towards 2 = Gamma."),
        Param("train_days", int, 365, low=28, high=3000, help="Train on the last N days of the train split."),
        Param("num_threads", int, 2, low=1, high=256, help="CPU threads for training and prediction."),
        Param("seed", int, 42, low=0, high=2**31 - 1, help="Seed for bagging and feature sampling."),
        Param("distributed", bool, False,
              help="Train across the Dask cluster's workers (lightgbm.dask) on the feature store read as a"
                   " dask.dataframe; needs the runner's --executor dask. The artifact is the same."),
    ])

    @property
    def fit_inputs(self) -> str:
        """A distributed fit reads the feature store on the cluster; a local one gets the frame."""
        return "feature_store" if self.distributed else "features"

    def fit(self, train, progress=no_progress) -> "LightGBMModel":
        """The frame's ``fit``, or, with ``distributed``, one fit across the Dask cluster (``lgbm_dask``)."""
        if not self.distributed:
            return super().fit(train, progress)
        from m5ops.models.lgbm_dask import fit_distributed  # late: needs the [dask] extra

        return fit_distributed(self, train, progress)

    def _lgb_params(self) -> dict:
        """The LightGBM parameter dict for training."""
        return {
            "objective": "tweedie", "tweedie_variance_power": self.tweedie_variance_power,
            "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction, "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2, "num_threads": self.num_threads, "seed": self.seed,
            # Same data, same model: needed to compare versions and to test round trips.
            "deterministic": True, "force_row_wise": True, "verbosity": -1,
        }

    def _fit(self, train: pd.DataFrame) -> None:
        """Train the booster; ids go in as pandas categoricals (LightGBM keeps their levels)."""
        lgb = require("lightgbm", "lightgbm>=4.3")
        data = lgb.Dataset(
            feature_frame(train), label=train[TARGET].to_numpy(dtype=np.float32),
            categorical_feature="auto", free_raw_data=True,
        )
        self.booster_ = lgb.train(self._lgb_params(), data, num_boost_round=self.num_boost_round,
                                  callbacks=[self._report_round])

    def _report_round(self, env) -> None:
        """LightGBM callback after each boosting round."""
        done = env.iteration - env.begin_iteration + 1
        total = env.end_iteration - env.begin_iteration
        self.report(done / total, f"boosting round {done} of {total}")

    def _predict(self, inp: ForecastInput) -> np.ndarray:
        """Booster output on the features (LightGBM maps id levels by the training levels)."""
        features = feature_frame(inp.features)
        return self.booster_.predict(features, num_threads=prediction_threads(len(features), self.num_threads))

    def feature_importance(self) -> pd.Series | None:
        """Total split gain per feature, largest first."""
        if not self.is_fitted:
            return None
        gain = self.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.booster_.feature_name(), name="gain").sort_values(ascending=False)

    def _save_artifact(self, directory: Path) -> None:
        """LightGBM's own text format: portable across versions and readable."""
        self.booster_.save_model(str(directory / ARTIFACT))

    def _load_artifact(self, directory: Path) -> None:
        """Read the text model back."""
        lgb = require("lightgbm", "lightgbm>=4.3")
        self.booster_ = lgb.Booster(model_file=str(artifact_file(directory, ARTIFACT)))

