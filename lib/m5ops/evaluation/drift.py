"""Drift statistics: how far the current data moved from a reference, per column.

Pure functions on arrays (no I/O): the population stability index (PSI) on 10 quantile bins of
the reference, a Wasserstein distance normalised by the reference's spread for numeric columns,
and the Jensen-Shannon distance for categorical ones (scipy's implementations). Missing values
are left out of both sides. A statistic that is undefined (an empty side, a constant reference)
is None, never NaN or inf.

Why scipy and not Evidently: Evidently 0.7.23 resolves beside our pins (pandas 3.1, numpy 2.4,
scipy 1.17; ``pip install --dry-run`` was clean) but brings 37 more packages (a web server,
plotly, nltk, statsmodels, telemetry) for three statistics scipy, already installed, computes;
its reports also take whole frames, where we bin and sample our own way.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

PSI_BINS = 10
PSI_FLOOR = 1e-4  # share given to an empty bin, so one empty bin does not make the PSI infinite
STABLE, SIGNIFICANT = 0.1, 0.25  # the usual PSI bands: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 significant
BANDS = ("stable", "moderate", "significant")
NUMERIC, CATEGORICAL = "numeric", "categorical"


def band(psi: float | None) -> str:
    """The band of a PSI value: stable (< 0.1), moderate (0.1-0.25), significant (>= 0.25); '-' if undefined."""
    if psi is None:
        return "-"
    return BANDS[0] if psi < STABLE else BANDS[1] if psi < SIGNIFICANT else BANDS[2]


def quantile_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """The inner edges of ``bins`` quantile bins of the reference; ties (zero-heavy sales) merge bins."""
    return np.unique(np.quantile(reference, np.arange(1, bins) / bins))


def _shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total, each at least ``PSI_FLOOR``."""
    return np.maximum(counts / counts.sum(), PSI_FLOOR)


def psi_from_counts(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI = sum((actual% - expected%) * ln(actual% / expected%)) over matching bins."""
    e, a = _shares(np.asarray(expected, float)), _shares(np.asarray(actual, float))
    return float(np.sum((a - e) * np.log(a / e)))


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float | None:
    """PSI of a numeric column on the reference's quantile bins, each bin (lower edge, upper edge]."""
    reference, current = _finite(reference), _finite(current)
    if not len(reference) or not len(current):
        return None
    edges = quantile_edges(reference, bins)
    n_bins = len(edges) + 1
    # side="left": a value equal to an edge belongs to the bin that edge closes (so all zeros share one bin)
    expected = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=n_bins)
    actual = np.bincount(np.searchsorted(edges, current, side="left"), minlength=n_bins)
    return psi_from_counts(expected, actual)


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float | None:
    """The Wasserstein-1 distance divided by the reference's standard deviation (None if it is constant)."""
    reference, current = _finite(reference), _finite(current)
    if not len(reference) or not len(current):
        return None
    spread = float(np.std(reference))
    if spread == 0.0:
        return None
    # imported here: scipy.stats costs 0.5 s, and every ``m5ops`` command imports this module (alerts)
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(reference, current)) / spread


def category_counts(reference: Iterable, current: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """Counts per level of both sides, over the union of their levels (missing values left out)."""
    ref, cur = pd.Series(reference, copy=False), pd.Series(current, copy=False)
    if _same_categories(ref, cur):  # ids of one series table: count the codes, no string per row
        n = len(ref.cat.categories)
        codes = [s.cat.codes.to_numpy() for s in (ref, cur)]
        return tuple(np.bincount(c[c >= 0], minlength=n) for c in codes)
    ref = ref.dropna().astype(str).value_counts()
    cur = cur.dropna().astype(str).value_counts()
    levels = ref.index.union(cur.index)
    return ref.reindex(levels, fill_value=0).to_numpy(), cur.reindex(levels, fill_value=0).to_numpy()


def _same_categories(a: pd.Series, b: pd.Series) -> bool:
    """Whether both are categoricals over the same levels."""
    return (isinstance(a.dtype, pd.CategoricalDtype) and isinstance(b.dtype, pd.CategoricalDtype)
            and a.cat.categories.equals(b.cat.categories))


def jensen_shannon(reference: Iterable, current: Iterable) -> float | None:
    """The Jensen-Shannon distance (base 2: 0 same, 1 disjoint) between the level shares of both sides."""
    ref, cur = category_counts(reference, current)
    if not ref.sum() or not cur.sum():
        return None
    from scipy.spatial.distance import jensenshannon  # imported here, as wasserstein_distance

    return float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))


def psi_categorical(reference: Iterable, current: Iterable) -> float | None:
    """PSI with one bin per level (the union of both sides' levels)."""
    ref, cur = category_counts(reference, current)
    if not ref.sum() or not cur.sum():
        return None
    return psi_from_counts(ref, cur)


def _finite(values) -> np.ndarray:
    """The finite values of a column, as float64."""
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


@dataclass(frozen=True)
class ColumnDrift:
    """The drift of one column: its statistics, how many values each side had, and its band."""

    column: str
    kind: str  # numeric | categorical
    psi: float | None
    wasserstein: float | None  # numeric columns only
    jensen_shannon: float | None  # categorical columns only
    n_reference: int
    n_current: int
    is_target: bool = False

    @property
    def band(self) -> str:
        return band(self.psi)

    def as_dict(self) -> dict:
        return {**asdict(self), "band": self.band}


def column_drift(column: str, reference, current, categorical: bool = False, is_target: bool = False) -> ColumnDrift:
    """Every statistic of one column that applies to its kind."""
    if categorical:
        ref, cur = pd.Series(reference, copy=False).dropna(), pd.Series(current, copy=False).dropna()
        return ColumnDrift(column, CATEGORICAL, _rounded(psi_categorical(ref, cur)), None,
                           _rounded(jensen_shannon(ref, cur)), len(ref), len(cur), is_target)
    ref, cur = _finite(reference), _finite(current)
    return ColumnDrift(column, NUMERIC, _rounded(psi(ref, cur)), _rounded(wasserstein_normed(ref, cur)), None,
                       len(ref), len(cur), is_target)


def frame_drift(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
                target: str) -> list[ColumnDrift]:
    """The drift of the target and of each listed column between two frames, target first."""
    found = [column_drift(target, reference[target], current[target], is_target=True)]
    found += [column_drift(c, reference[c], current[c]) for c in numeric if c != target]
    found += [column_drift(c, reference[c], current[c], categorical=True) for c in categorical]
    return found


def _rounded(value: float | None, digits: int = 6) -> float | None:
    """A statistic as stored: rounded, and None where it is not finite."""
    return None if value is None or not math.isfinite(value) else round(value, digits)
