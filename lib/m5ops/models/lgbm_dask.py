"""The ``lightgbm`` kind with ``distributed=true``: one fit across a Dask cluster's workers (``lightgbm.dask``).

The training window is read as a ``dask.dataframe`` of the feature store (one partition per day
file, read by the workers from the shared workspace) and fitted by LightGBM's own Dask interface,
``lightgbm.dask.DaskLGBMRegressor``, with the same parameters as the local fit. The booster it
returns is an ordinary ``lightgbm.Booster``: the version is saved as the same ``model.txt``, and
loads and predicts without Dask.

The cluster is the one the run executes on (``M5OPS_DASK_SCHEDULER``, set by the runner's Dask
executor for the run's kernel), else the default Dask client of this process.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np
import pandas as pd

from m5ops.errors import ModelError
from m5ops.models.base import TARGET, TrainingSummary, require
from m5ops.orchestration.dask_executor import INSTALL, SCHEDULER_ENV

log = logging.getLogger("m5ops.models")
# LightGBM's names -> the scikit-learn names DaskLGBMRegressor takes them by (else it warns of aliases)
SKLEARN_NAMES = {"min_data_in_leaf": "min_child_samples", "feature_fraction": "colsample_bytree",
                 "bagging_fraction": "subsample", "bagging_freq": "subsample_freq", "lambda_l2": "reg_lambda",
                 "seed": "random_state", "num_threads": "n_jobs"}


def cluster_client():
    """A client of the cluster to train on; ModelError saying how to get one."""
    distributed = require("distributed", INSTALL.split(" ", 2)[2].strip("'"))
    address = os.environ.get(SCHEDULER_ENV)
    if address:
        return distributed.Client(address, timeout=30, set_as_default=False)
    try:
        return distributed.get_client()
    except ValueError:
        raise ModelError("lightgbm with distributed=true trains on a Dask cluster and none is known here: run the"
                         " runner with --executor dask --scheduler tcp://HOST:8786, set"
                         f" {SCHEDULER_ENV}=tcp://HOST:8786, or train with distributed=false") from None


def spread_over_workers(client, frame):
    """``frame`` computed on the cluster, its partitions dealt to the workers in turn (0, 1, 0, 1, ...).

    Each worker of a distributed LightGBM fit builds the histogram bins of some features from its
    own rows only, so which days land where changes the model. Left to the scheduler, whole runs
    of consecutive days went to one worker (up to a half-year each on two workers), and the fit
    came out 0-4% off the local one from run to run; dealt in turn, every worker holds days from
    the whole window, and the fit stays within about 1% of the local one (measured on the real
    slice, two workers: which worker ranks first and the order it joins its parts still vary).
    """
    import dask.dataframe as dd

    addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])
    parts = frame.to_delayed()
    placed = [None] * len(parts)
    for turn, address in enumerate(addresses):
        mine = range(turn, len(parts), len(addresses))
        computed = client.compute([parts[i] for i in mine], workers=[address], allow_other_workers=False)
        for i, future in zip(mine, computed):
            placed[i] = future
    return dd.from_delayed(placed, meta=frame._meta, verify_meta=False)


def fit_distributed(model, train, progress):
    """``ForecastModel.fit`` for a distributed LightGBM: ``train`` is a Dask (or pandas) frame of the window."""
    require("lightgbm.dask", "lightgbm>=4.3 'm5ops[dask]'")
    import dask.dataframe as dd
    from lightgbm import DaskLGBMRegressor

    model.set_params()
    started = time.perf_counter()
    client = cluster_client()
    own_client = os.environ.get(SCHEDULER_ENV) is not None
    try:
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        if isinstance(train, pd.DataFrame):
            train = dd.from_pandas(train, npartitions=max(1, workers))
        missing = [c for c in ["day", TARGET, *model.inputs] if c not in train.columns]
        if missing:
            raise ModelError(f"the training frame lacks column(s) {missing}; read it with FeatureStore.to_dask")
        train = spread_over_workers(client, train[["day", TARGET, *model.inputs]])
        rows, first, last, low = client.compute([train.shape[0], train["day"].min(), train["day"].max(),
                                                 train[TARGET].min()], sync=True)
        if not rows:
            raise ModelError("lightgbm: the training frame has no rows; train on at least one day")
        if not np.isfinite(low) or low < 0:
            raise ModelError(f"training column {TARGET!r} has NaN, inf or negative values")
        progress(0.0, f"fitting lightgbm on {rows:,} rows across {workers} Dask worker(s)")
        params = {SKLEARN_NAMES.get(name, name): value for name, value in model._lgb_params().items()}
        regressor = DaskLGBMRegressor(client=client, n_estimators=model.num_boost_round, **params)
        with client.as_current():  # lightgbm.dask waits on its parts through the current client
            regressor.fit(train[model.inputs], train[TARGET].astype(np.float32))
        model.booster_ = regressor.booster_
    finally:
        if own_client:
            client.close()
    duration = time.perf_counter() - started
    progress(1.0, f"fitted lightgbm across {workers} Dask worker(s) in {duration:.1f} s")
    log.info("distributed lightgbm: %d rows, days %s..%s, %d worker(s), %.1f s", rows, first, last, workers, duration)
    model.training_summary = TrainingSummary(rows=int(rows), features=list(model.inputs),
                                             duration_s=round(duration, 3), first_day=int(first), last_day=int(last))
    return model
