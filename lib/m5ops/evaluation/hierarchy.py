"""M5's hierarchy of 12 levels: one sparse summing matrix from the bottom series to every node.

Row ``r`` of ``Hierarchy.matrix`` sums the bottom series of aggregated series (node) ``r``;
``Hierarchy.table`` names it as the official weights file does (``level``, ``agg_level_1``,
``agg_level_2``, "X" where unused). The node order is fixed by the series table alone, so a
state kept per node (the running scale sums) lines up with any later ``Hierarchy`` of the same
series table; ``key`` (a digest of the table's hierarchy keys) tells whether it does.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from m5ops.data.schema import HIERARCHY
from m5ops.errors import DataError

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
LEVEL_TITLES = {
    "Level1": "total", "Level2": "state", "Level3": "store", "Level4": "category", "Level5": "department",
    "Level6": "state x category", "Level7": "state x department", "Level8": "store x category",
    "Level9": "store x department", "Level10": "item", "Level11": "state x item", "Level12": "item x store",
}
OVERALL = "all"  # the level key of the overall value (the mean of the 12 levels) in the metrics history


def level_key(level: str) -> str:
    """``'Level12'`` -> ``'12'``: how a level is named in the metrics history and on the command line."""
    return level.removeprefix("Level")


METRIC_LEVELS = (OVERALL, *(level_key(level) for level in LEVELS))


def level_title(key: str) -> str:
    """``'12'`` -> ``'level 12 (item x store)'``; ``'all'`` -> ``'overall'``."""
    return "overall" if key == OVERALL else f"level {key} ({LEVEL_TITLES[f'Level{key}']})"


Factors = dict[str, tuple[np.ndarray, np.ndarray]]  # column -> (code of each row, labels), first appearance first


def _factors(series: pd.DataFrame) -> Factors:
    """Each hierarchy column factorised once: the work of every level is then integer arithmetic."""
    out = {}
    for column in HIERARCHY:
        codes, uniques = pd.factorize(series[column].to_numpy(dtype=object))
        out[column] = codes.astype(np.int64), np.array([str(u) for u in uniques], dtype=object)
    return out


def _level_groups(factors: Factors, n: int, keys: tuple[str, ...]) -> tuple[np.ndarray, pd.DataFrame]:
    """The group number of each series row in one level (by first appearance), and each group's two key labels."""
    if not keys:
        return np.zeros(n, dtype=np.int64), pd.DataFrame({"agg_level_1": ["Total"], "agg_level_2": ["X"]})
    first_codes, first_labels = factors[keys[0]]
    if len(keys) == 1:
        return first_codes, pd.DataFrame({"agg_level_1": first_labels, "agg_level_2": "X"})
    second_codes, second_labels = factors[keys[1]]
    width = len(second_labels)
    codes, pairs = pd.factorize(first_codes * width + second_codes)
    return codes.astype(np.int64), pd.DataFrame({"agg_level_1": first_labels[pairs // width],
                                                 "agg_level_2": second_labels[pairs % width]})


def _check_series(series: pd.DataFrame) -> None:
    """Refuse a series table without every hierarchy key; the message says what to fix."""
    missing = [c for c in HIERARCHY if c not in series.columns]
    if missing:
        raise DataError(f"series table lacks columns {missing}; it needs {HIERARCHY}")
    if series[HIERARCHY].isna().any().any():
        raise DataError(f"series table has missing hierarchy keys; every row needs all of {HIERARCHY}")


@dataclass(frozen=True)
class Hierarchy:
    """The summing matrix (nodes x bottom series) of all 12 levels, its node table and level codes."""

    matrix: sparse.csr_matrix
    table: pd.DataFrame
    level_codes: np.ndarray  # per node: 0..11, the position of its level in LEVELS
    key: str  # a digest of the series' hierarchy keys: equal keys, equal matrix

    @classmethod
    def of(cls, series: pd.DataFrame) -> "Hierarchy":
        """The hierarchy of a series table (columns ``HIERARCHY``), rows in the table's order."""
        _check_series(series)
        n, factors = len(series), _factors(series)
        rows, keys, offset = [], [], 0
        for level, columns in LEVELS.items():
            codes, labels = _level_groups(factors, n, columns)
            rows.append(codes + offset)
            keys.append(labels.assign(level=level))
            offset += len(labels)
        matrix = sparse.csr_matrix(
            (np.ones(n * len(LEVELS)), (np.concatenate(rows), np.tile(np.arange(n), len(LEVELS)))),
            shape=(offset, n),
        )
        table = pd.concat(keys, ignore_index=True)[["level", "agg_level_1", "agg_level_2"]]
        codes = pd.Categorical(table["level"], categories=list(LEVELS)).codes.astype(np.int64)
        return cls(matrix, table, codes, _digest(factors))

    @property
    def n_series(self) -> int:
        return self.matrix.shape[1]

    @property
    def n_nodes(self) -> int:
        return self.matrix.shape[0]

    def aggregate(self, bottom: np.ndarray) -> np.ndarray:
        """Every node's values (float64, nodes x columns) from the bottom series' (series x columns)."""
        return np.asarray(self.matrix @ np.asarray(bottom, dtype=np.float64), dtype=np.float64)


def _digest(factors: Factors) -> str:
    """A short digest of the series' hierarchy keys in row order: they alone fix the summing matrix."""
    digest = hashlib.sha256()
    for column in HIERARCHY:
        codes, labels = factors[column]
        digest.update(codes.astype(np.int32).tobytes())
        digest.update("\x00".join(labels).encode() + b"\x01")
    return digest.hexdigest()[:16]
