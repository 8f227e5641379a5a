"""Forecast accuracy metrics: pure functions on arrays of unit sales, and the project's metric set.

``evaluate_forecast`` gives the metrics the project stores in its history, under the names of
``METRICS``. The point metrics take arrays of any one shape (usually (n_series, horizon)) and
average over every cell; WRMSSE lives in ``m5ops.evaluation.wrmsse`` and is re-exported here.

A value that is undefined (WMAPE of a window without sales) is stored as None, never as NaN
or inf, and ``format_score`` shows it with its reason: the one place that words it.
"""
from __future__ import annotations

import math

import numpy as np

from m5ops.errors import DataError, ParameterError
from m5ops.evaluation.wrmsse import LEVELS, WRMSSE, WRMSSEScore, excluded_note, wrmsse

__all__ = [
    "METRICS", "TWEEDIE_EPS", "LEVELS", "WRMSSE", "WRMSSEScore", "UNDEFINED",
    "mae", "wmape", "rmse", "tweedie_deviance", "wrmsse", "evaluate_forecast", "format_score", "excluded_note",
]

METRICS = ("mae", "wmape", "rmse", "tweedie", "wrmsse")
# Floor for Tweedie predictions. The deviance needs mu > 0: at mu = 0 it is infinite wherever a
# sale happened, and count models and the naive baselines do predict exact zeros for
# intermittent series (on the real slice 40% of Naive's cells are 0). 1e-3 units a day means "no
# sale expected" for any practical purpose, yet bounds the cost of a sale against it (a sale of
# 1 costs ~119, against ~0.49 for a forecast of 0.5). LightGBM's own metric floors at 1e-10,
# where those cells dominate: Naive then scores ~74,000 on the slice, against ~24 here, and
# the ranking of models says more about their zero cells than their accuracy. The price: a
# correct forecast of 0 costs 4*sqrt(1e-3) ~ 0.13 instead of 0. Predictions above it are untouched.
TWEEDIE_EPS = 1e-3
# Why a metric can have no value; shown beside it wherever a score is shown.
UNDEFINED = {"wmape": "no sales in the window"}
NO_VALUE = "not recorded"
NOT_FINITE = "not finite (recorded before undefined values were stored as such)"


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 of one non-empty shape without NaN or inf; else a DataError."""
    arrays = []
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(f"{name} is not numeric ({error}); pass an array of unit sales") from None
        bad = int((~np.isfinite(y)).sum())
        if bad:
            raise DataError(f"{name} has {bad} NaN/inf values; fill or drop them before scoring")
        arrays.append(y)
    y_true, y_pred = arrays
    if y_true.shape != y_pred.shape:
        raise DataError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}; they must match")
    if y_true.size == 0:
        raise DataError("y_true and y_pred are empty; there is nothing to score")
    return y_true, y_pred


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean(np.square(y_true - y_pred))))


def wmape(y_true, y_pred) -> float:
    """sum|y - yhat| / sum|y|; NaN when every actual is 0.

    With no sales at all there is no volume to be a percentage of, so the value is undefined:
    NaN (not inf, and not 0 even for a perfect forecast), which pandas and charts treat as
    missing rather than letting it break a mean or an axis.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    volume = np.abs(y_true).sum()
    if volume == 0:
        return float("nan")
    return float(np.abs(y_true - y_pred).sum() / volume)


def tweedie_deviance(y_true, y_pred, power: float = 1.5) -> float:
    """Mean Tweedie deviance for 1 < power < 2, predictions floored at ``TWEEDIE_EPS``."""
    if not 1 < power < 2:
        raise ParameterError(f"power must be strictly between 1 and 2 (compound Poisson-gamma), "
                             f"got {power!r}; M5 models use 1.5")
    y_true, y_pred = _pair(y_true, y_pred)
    if (y_true < 0).any():
        raise DataError(f"y_true has {int((y_true < 0).sum())} negative values; Tweedie needs counts >= 0")
    mu = np.maximum(y_pred, TWEEDIE_EPS)
    dev = 2 * (
        np.power(y_true, 2 - power) / ((1 - power) * (2 - power))
        - y_true * np.power(mu, 1 - power) / (1 - power)
        + np.power(mu, 2 - power) / (2 - power)
    )
    return float(np.mean(dev))


def evaluate_forecast(y_true, y_pred, *, wrmsse: WRMSSE | None = None) -> dict[str, float | None]:
    """The metrics of ``METRICS`` for one forecast (None where undefined); ``wrmsse`` only with an evaluator."""
    scores = {
        "mae": mae(y_true, y_pred),
        "wmape": wmape(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "tweedie": tweedie_deviance(y_true, y_pred),
    }
    if wrmsse is not None:
        scores["wrmsse"] = wrmsse.score(y_true, y_pred).overall
    return {name: value if math.isfinite(value) else None for name, value in scores.items()}


def format_score(metric: str, value: float | None) -> str:
    """A score in four significant digits, or why there is none ('n/a: no sales in the window').

    NaN counts as None: it is how pandas reads a stored NULL (SQLite stores no NaN).
    """
    if value is None or math.isnan(value):
        return f"n/a: {UNDEFINED.get(metric, NO_VALUE)}"
    return f"{value:.4g}" if math.isfinite(value) else f"n/a: {NOT_FINITE}"
