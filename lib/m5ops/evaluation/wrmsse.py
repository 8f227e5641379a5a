"""WRMSSE, the M5 accuracy metric, as the M5 competitors guide and the organizers' R code define it.

Every bottom series (item x store) is summed into the hierarchy of 12 levels (``hierarchy.LEVELS``).
For each aggregated series (node)::

    RMSSE = sqrt( mean_h (y - yhat)^2 / scale )
    scale = mean of (y_t - y_{t-1})^2 over its whole history from its first non-zero sale

Each node is weighted by its dollar sales (units x sell price) over the last 28 days before the
forecast window, normalised to sum to 1 within its level; the score of a level is the weighted
sum of its RMSSEs and WRMSSE is the mean of the 12 level scores (each level weighs 1/12).
The scales come from ``scales.ScaleState`` (running sums, so that daily monitoring need not
re-read the history); ``WRMSSE(series, sales, prices)`` builds them from a history in memory.

Nodes that cannot be scaled. A node whose scale is 0 (its history never changed from its first
sale on, or it first sold on the last day, or it never sold) has no RMSSE: the organizers' code
divides by zero and would make the score Inf or NaN (it never arises on the full M5 data, but it
does on a slice, an early cutoff or a new item). We leave such a node out of its level's
weighting and renormalise the level's remaining weights to sum to 1, as if the level had only
the nodes that can be scaled; the number of nodes left out that had dollar sales (and so would
have counted) is reported beside the value (``WRMSSEScore.excluded``). A node with no dollar
sales has weight 0 and no say either way, as in the official weights. A level none of whose
weighted nodes can be scaled has no WRMSSE: the evaluator refuses it with a DataError.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from m5ops.errors import DataError, ParameterError
from m5ops.evaluation.hierarchy import LEVELS, OVERALL, Hierarchy, level_key
from m5ops.evaluation.scales import ScaleState

__all__ = ["LEVELS", "WEIGHT_DAYS", "WRMSSE", "WRMSSEScore", "excluded_note", "wrmsse"]
WEIGHT_DAYS = 28


def excluded_note(count: int | None) -> str:
    """'3 series without a scale left out', or '' when none was."""
    return f"{int(count)} series without a scale left out" if count else ""


@dataclass(frozen=True)
class WRMSSEScore:
    """One forecast's WRMSSE: the overall value, each level's, and the nodes left out per level."""

    overall: float
    levels: pd.Series  # Level1..Level12 -> the level's weighted RMSSE
    excluded: pd.Series  # Level1..Level12 -> weighted nodes without a scale, left out

    @property
    def excluded_total(self) -> int:
        """Nodes left out over all 12 levels."""
        return int(self.excluded.sum())

    @property
    def note(self) -> str:
        """What to say beside the value ('' when nothing was left out)."""
        return excluded_note(self.excluded_total)

    def by_key(self) -> dict[str, tuple[float, int]]:
        """``{'all': (overall, left out in all levels), '1': (level 1, left out), ...}``: the stored rows."""
        rows = {OVERALL: (self.overall, self.excluded_total)}
        rows.update({level_key(level): (float(self.levels[level]), int(self.excluded[level])) for level in LEVELS})
        return rows

    def __float__(self) -> float:
        return self.overall


def _check_history(n_series: int, sales: np.ndarray, prices: np.ndarray, weight_days: int) -> None:
    """Refuse histories that do not line up with the series; the message says what to fix."""
    if sales.ndim != 2 or sales.shape[0] != n_series:
        raise DataError(f"train_sales has shape {sales.shape}; expected ({n_series}, n_train_days), "
                        "one row per row of the series table")
    if prices.shape != sales.shape:
        raise DataError(f"train_prices has shape {prices.shape}; expected train_sales' shape {sales.shape}")
    if sales.dtype.kind not in "biuf":
        raise DataError(f"train_sales has dtype {sales.dtype}; expected numeric unit sales")
    if not np.isfinite(sales).all():
        bad = int((~np.isfinite(sales)).sum())
        raise DataError(f"train_sales has {bad} NaN/inf values; sales must be counts (0 where nothing sold)")
    if sales.shape[1] < weight_days:
        raise DataError(f"train_sales has {sales.shape[1]} days; WRMSSE needs at least {weight_days} "
                        f"(the {weight_days}-day dollar-sales window)")


def _check_weight_days(weight_days: int) -> int:
    if int(weight_days) < 1:
        raise ParameterError(f"weight_days must be a positive number of days, got {weight_days!r}")
    return int(weight_days)


class WRMSSE:
    """The M5 WRMSSE of forecasts for one cutoff: hierarchy, scales and weights built once.

    ``series`` is the hierarchy table (columns ``item_id, dept_id, cat_id, store_id, state_id``)
    in row order; ``train_sales`` and ``train_prices`` are (n_series, n_train_days) up to the
    cutoff: the scales come from all of it, the weights from its last ``weight_days``. A NaN
    price (item not yet on sale) counts as 0 dollar sales. ``WRMSSE.from_scales`` builds the same
    evaluator from a running ``ScaleState`` and only the weight window.

    ``weights`` has one row per node: ``level``, ``agg_level_1``, ``agg_level_2`` (keys as in
    the official weights file, "X" where unused), ``dollar_sales``, ``weight`` (sums to 1 within
    each level, like the official file), ``scale``, and ``scaled_weight``: the weight the score
    uses, 0 for a node without a scale, the others renormalised to sum to 1 within the level.
    """

    def __init__(self, series: pd.DataFrame, train_sales: np.ndarray, train_prices: np.ndarray,
                 *, weight_days: int = WEIGHT_DAYS):
        weight_days = _check_weight_days(weight_days)
        hierarchy = Hierarchy.of(series)
        sales = np.asarray(train_sales)
        prices = np.asarray(train_prices, dtype=np.float64)
        _check_history(hierarchy.n_series, sales, prices, max(weight_days, 2))
        state = ScaleState.of_sales(hierarchy, sales, first_day=1)
        window = slice(sales.shape[1] - weight_days, None)
        self._build(hierarchy, state.scales(), sales[:, window], prices[:, window])

    @classmethod
    def from_scales(cls, hierarchy: Hierarchy, scales: np.ndarray, weight_sales: np.ndarray,
                    weight_prices: np.ndarray) -> "WRMSSE":
        """The evaluator from each node's scale and the sales and prices of the weight window.

        ``weight_sales``/``weight_prices`` are (n_series, days): the days just before the
        forecast window (M5: 28), the days whose dollar sales weigh each node.
        """
        sales = np.asarray(weight_sales)
        prices = np.asarray(weight_prices, dtype=np.float64)
        _check_history(hierarchy.n_series, sales, prices, 1)
        scales = np.asarray(scales, dtype=np.float64)
        if scales.shape != (hierarchy.n_nodes,):
            raise DataError(f"scales has shape {scales.shape}; expected ({hierarchy.n_nodes},), one per node")
        evaluator = cls.__new__(cls)
        evaluator._build(hierarchy, scales, sales, prices)
        return evaluator

    def _build(self, hierarchy: Hierarchy, scales: np.ndarray, sales: np.ndarray, prices: np.ndarray) -> None:
        """Weights from the window's dollar sales; the renormalised weights of the nodes with a scale."""
        self.hierarchy, self.n_series = hierarchy, hierarchy.n_series
        self._level_codes = hierarchy.level_codes
        dollars = hierarchy.matrix @ np.nansum(sales * prices, axis=1)
        total = dollars[self._level_codes == 0].sum()
        if not total > 0:
            raise DataError(f"no dollar sales in the last {sales.shape[1]} training days; weights are undefined "
                            "(check that train_prices holds prices where items sold)")
        # Every level partitions the same bottom series, so each level's dollar total is the Level1 total.
        weight = dollars / total
        scaled = np.where(scales > 0, weight, 0.0)
        level_sums = np.bincount(self._level_codes, weights=scaled, minlength=len(LEVELS))
        empty = [level for level, s in zip(LEVELS, level_sums) if not s > 0]
        if empty:
            raise DataError(f"WRMSSE is undefined: no node of {', '.join(empty)} has both dollar sales and a scale "
                            "(every weighted series is flat since its first sale); use a longer history")
        self.weights = hierarchy.table.assign(dollar_sales=dollars, weight=weight, scale=scales,
                                              scaled_weight=scaled / level_sums[self._level_codes])
        left_out = (weight > 0) & ~(scales > 0)
        self.excluded = pd.Series(np.bincount(self._level_codes, weights=left_out, minlength=len(LEVELS)).astype(int),
                                  index=pd.Index(list(LEVELS), name="level"), name="excluded")

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
        """RMSSE of every node (row order of ``weights``); 0 where the node has no scale (it is left out)."""
        y_true = self._check_forecast("y_true", y_true)
        y_pred = self._check_forecast("y_pred", y_pred)
        if y_true.shape != y_pred.shape:
            raise DataError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}; they must match")
        # Summing is linear: aggregate the errors rather than both arrays.
        mse = np.mean(np.square(self.hierarchy.matrix @ (y_true - y_pred)), axis=1)
        scale = self.weights["scale"].to_numpy()
        return np.sqrt(np.divide(mse, scale, out=np.zeros_like(mse), where=scale > 0))

    def score_by_series(self, y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
        """``weights`` with each node's ``rmsse`` added (NaN for a node without a scale)."""
        rmsse = self._rmsse(y_true, y_pred)
        return self.weights.assign(rmsse=np.where(self.weights["scale"] > 0, rmsse, np.nan))

    def score_by_level(self, y_true: np.ndarray, y_pred: np.ndarray) -> pd.Series:
        """The weighted RMSSE of each level, indexed Level1..Level12 (their mean is the WRMSSE)."""
        terms = self.weights["scaled_weight"].to_numpy() * self._rmsse(y_true, y_pred)
        sums = np.bincount(self._level_codes, weights=terms, minlength=len(LEVELS))
        return pd.Series(sums, index=pd.Index(list(LEVELS), name="level"), name="wrmsse")

    def score(self, y_true: np.ndarray, y_pred: np.ndarray) -> WRMSSEScore:
        """The WRMSSE (the mean of the 12 level scores), each level's, and the nodes left out."""
        levels = self.score_by_level(y_true, y_pred)
        return WRMSSEScore(float(levels.mean()), levels, self.excluded)


def wrmsse(series: pd.DataFrame, train_sales: np.ndarray, train_prices: np.ndarray,
           y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """One-shot WRMSSE; build a ``WRMSSE`` once instead when scoring several forecasts."""
    return WRMSSE(series, train_sales, train_prices).score(y_true, y_pred).overall
