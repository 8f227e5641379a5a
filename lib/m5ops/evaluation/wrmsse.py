"""WRMSSE, the M5 accuracy metric, as the M5 competitors guide and the organizers' R code define it.

Every bottom series (item x store) is summed into the 42,840-style hierarchy of 12 levels
(``LEVELS``). For each aggregated series::

    RMSSE = sqrt( mean_h (y - yhat)^2 / scale )
    scale = mean of (y_t - y_{t-1})^2 over its training history from its first non-zero sale

Each series is weighted by its dollar sales (units x sell price) over the last 28 training days,
normalised to sum to 1 within its level; the score of a level is the weighted sum of its RMSSEs
and WRMSSE is the mean of the 12 level scores (each level weighs 1/12). ``score_by_level``
returns the 12 level scores, the numbers of the organizers' "Scores and Ranks" table.

Series that cannot be scaled (their history, from the first sale on, never changes, or has no
step at all, or they never sold): the organizers' code does no special handling. It divides by
the zero scale (``mean(diff(x)^2)`` is 0, or NaN for a single day), so such a series would make
the score Inf or NaN. It never arises on the full M5 data (the published scores are finite, so
every series there sold and varied), but it can on a slice or an early cutoff. We keep the
official arithmetic where it carries meaning and pin down the two edge cases:

- a series whose weight is 0 (no dollar sales in the weight window, which includes every series
  that never sold) contributes 0, as its weight says; official code would give ``0 x Inf = NaN``;
- a weighted series with scale 0 (``weights.scale == 0``) gets RMSSE = +inf when its forecast
  has any error, as in the official code, so the score is +inf: loud, never silently dropped
  (some popular Kaggle evaluators drop such terms silently). A perfect forecast of it counts 0,
  not NaN.
  A history of a single day from the first sale has no step; its scale is stored as 0 too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from m5ops.data.schema import HIERARCHY
from m5ops.errors import DataError, ParameterError

# Level name -> key columns, in the order of the official weights file's Agg_Level_1/Agg_Level_2.
LEVELS: dict[str, tuple[str, ...]] = {
    "Level1": (),
    "Level2": ("state_id",),
    "Level3": ("store_id",),
    "Level4": ("cat_id",),
    "Level5": ("dept_id",),
    "Level6": ("state_id", "cat_id"),
    "Level7": ("state_id", "dept_id"),
    "Level8": ("store_id", "cat_id"),
    "Level9": ("store_id", "dept_id"),
    "Level10": ("item_id",),
    "Level11": ("state_id", "item_id"),
    "Level12": ("item_id", "store_id"),
}
WEIGHT_DAYS = 28
# Rows of aggregated history summed at a time when computing scales; bounds memory on full M5.
_SCALE_CHUNK = 4096


def _level_groups(series: pd.DataFrame, keys: tuple[str, ...]) -> tuple[np.ndarray, pd.DataFrame]:
    """The group number of each series row in one level, and each group's two key labels."""
    if not keys:
        labels = pd.DataFrame({"agg_level_1": ["Total"], "agg_level_2": ["X"]})
        return np.zeros(len(series), dtype=np.int64), labels
    frame = series[list(keys)].astype(str).reset_index(drop=True)
    # groupby(sort=False) numbers groups by first appearance, the order drop_duplicates keeps.
    codes = frame.groupby(list(keys), sort=False).ngroup().to_numpy()
    firsts = frame[~frame.duplicated()]
    labels = pd.DataFrame({
        "agg_level_1": firsts[keys[0]].to_numpy(),
        "agg_level_2": firsts[keys[1]].to_numpy() if len(keys) == 2 else "X",
    })
    return codes, labels


def _hierarchy(series: pd.DataFrame) -> tuple[sparse.csr_matrix, pd.DataFrame]:
    """One summing matrix (aggregated series x bottom series) for all 12 levels, and its row keys."""
    n = len(series)
    rows, keys, offset = [], [], 0
    for level, columns in LEVELS.items():
        codes, labels = _level_groups(series, columns)
        rows.append(codes + offset)
        keys.append(labels.assign(level=level))
        offset += len(labels)
    matrix = sparse.csr_matrix(
        (np.ones(n * len(LEVELS)), (np.concatenate(rows), np.tile(np.arange(n), len(LEVELS)))),
        shape=(offset, n),
    )
    table = pd.concat(keys, ignore_index=True)[["level", "agg_level_1", "agg_level_2"]]
    return matrix, table


def _scales(matrix: sparse.csr_matrix, sales: np.ndarray) -> np.ndarray:
    """Mean squared one-step difference of each aggregated history from its first non-zero day."""
    n_days = sales.shape[1]
    out = np.zeros(matrix.shape[0])
    for start in range(0, matrix.shape[0], _SCALE_CHUNK):
        agg = np.asarray(matrix[start:start + _SCALE_CHUNK] @ sales, dtype=np.float64)
        nonzero = agg != 0
        first = nonzero.argmax(axis=1)
        squares = np.square(np.diff(agg, axis=1)).sum(axis=1)
        # Before the first sale every step is 0 except the step onto it, which M5 does not count.
        onto_first = np.where(first > 0, agg[np.arange(len(agg)), first], 0.0) ** 2
        steps = n_days - 1 - first
        ok = nonzero.any(axis=1) & (steps > 0)
        out[start:start + len(agg)] = np.where(ok, (squares - onto_first) / np.maximum(steps, 1), 0.0)
    return out


def _check_history(series: pd.DataFrame, sales: np.ndarray, prices: np.ndarray, weight_days: int) -> None:
    """Refuse a series table and histories that do not line up; the message says what to fix."""
    missing = [c for c in HIERARCHY if c not in series.columns]
    if missing:
        raise DataError(f"series table lacks columns {missing}; it needs {HIERARCHY}")
    if series[HIERARCHY].isna().any().any():
        raise DataError(f"series table has missing hierarchy keys; every row needs all of {HIERARCHY}")
    if sales.ndim != 2 or sales.shape[0] != len(series):
        raise DataError(f"train_sales has shape {sales.shape}; expected ({len(series)}, n_train_days), "
                        "one row per row of the series table")
    if prices.shape != sales.shape:
        raise DataError(f"train_prices has shape {prices.shape}; expected train_sales' shape {sales.shape}")
    if sales.dtype.kind not in "biuf":
        raise DataError(f"train_sales has dtype {sales.dtype}; expected numeric unit sales")
    if not np.isfinite(sales).all():
        bad = int((~np.isfinite(sales)).sum())
        raise DataError(f"train_sales has {bad} NaN/inf values; sales must be counts (0 where nothing sold)")
    if sales.shape[1] < max(weight_days, 2):
        raise DataError(
            f"train_sales has {sales.shape[1]} days; WRMSSE needs at least {max(weight_days, 2)} "
            f"(the {weight_days}-day dollar-sales window, and two days for a scale)"
        )


class WRMSSE:
    """The M5 WRMSSE of forecasts for one training cutoff: hierarchy, scales and weights built once.

    ``series`` is the hierarchy table (columns ``item_id, dept_id, cat_id, store_id, state_id``)
    in row order; ``train_sales`` and ``train_prices`` are (n_series, n_train_days) up to the
    cutoff. A NaN price (item not yet on sale) counts as 0 dollar sales.
    ``weights`` has one row per aggregated series: ``level``, ``agg_level_1``, ``agg_level_2``
    (keys as in the official weights file, "X" where unused), ``dollar_sales``, ``weight``
    (sums to 1 within each level, like the official file) and ``scale``.
    """

    def __init__(self, series: pd.DataFrame, train_sales: np.ndarray, train_prices: np.ndarray,
                 *, weight_days: int = WEIGHT_DAYS):
        if int(weight_days) < 1:
            raise ParameterError(f"weight_days must be a positive number of days, got {weight_days!r}")
        sales = np.asarray(train_sales)
        prices = np.asarray(train_prices, dtype=np.float64)
        _check_history(series, sales, prices, int(weight_days))
        self.n_series = len(series)
        self._matrix, table = _hierarchy(series)
        window = slice(sales.shape[1] - int(weight_days), None)
        dollars = self._matrix @ np.nansum(sales[:, window] * prices[:, window], axis=1)
        total = dollars[table["level"].to_numpy() == "Level1"].sum()
        if not total > 0:
            raise DataError(f"no dollar sales in the last {weight_days} training days; weights are undefined "
                            "(check that train_prices holds prices where items sold)")
        # Every level partitions the same bottom series, so each level's dollar total is the Level1 total.
        self.weights = table.assign(dollar_sales=dollars, weight=dollars / total,
                                    scale=_scales(self._matrix, sales))
        self._level_codes = pd.Categorical(table["level"], categories=list(LEVELS)).codes

    def _check_forecast(self, name: str, y: np.ndarray) -> np.ndarray:
        """A forecast or actuals array as float64 (n_series, horizon) without NaN; else a DataError."""
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2 or y.shape[0] != self.n_series or y.shape[1] == 0:
            raise DataError(f"{name} has shape {y.shape}; expected ({self.n_series}, horizon), "
                            "one row per series of the evaluator")
        if not np.isfinite(y).all():
            bad = int((~np.isfinite(y)).sum())
            raise DataError(f"{name} has {bad} NaN/inf values; every series needs a value on every day")
        return y

    def _rmsse(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """RMSSE of every aggregated series (row order of ``weights``)."""
        y_true = self._check_forecast("y_true", y_true)
        y_pred = self._check_forecast("y_pred", y_pred)
        if y_true.shape != y_pred.shape:
            raise DataError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}; they must match")
        # Summing is linear: aggregate the errors rather than both arrays.
        mse = np.mean(np.square(self._matrix @ (y_true - y_pred)), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = mse / self.weights["scale"].to_numpy()
        return np.sqrt(np.where(mse == 0, 0.0, ratio))

    def score_by_series(self, y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
        """``weights`` with each aggregated series' ``rmsse`` added."""
        return self.weights.assign(rmsse=self._rmsse(y_true, y_pred))

    def score_by_level(self, y_true: np.ndarray, y_pred: np.ndarray) -> pd.Series:
        """The weighted RMSSE of each level, indexed Level1..Level12 (their mean is the WRMSSE)."""
        weight = self.weights["weight"].to_numpy()
        rmsse = self._rmsse(y_true, y_pred)
        # Weight-0 series have no say; 0 x inf would otherwise turn the level into NaN.
        terms = weight * np.where(weight > 0, rmsse, 0.0)
        sums = np.bincount(self._level_codes, weights=terms, minlength=len(LEVELS))
        return pd.Series(sums, index=pd.Index(list(LEVELS), name="level"), name="wrmsse")

    def score(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        """The WRMSSE: the mean of the 12 level scores."""
        return float(self.score_by_level(y_true, y_pred).mean())


def wrmsse(series: pd.DataFrame, train_sales: np.ndarray, train_prices: np.ndarray,
           y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """One-shot WRMSSE; build a ``WRMSSE`` once instead when scoring several forecasts."""
    return WRMSSE(series, train_sales, train_prices).score(y_true, y_pred)
