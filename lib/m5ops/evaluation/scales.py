"""M5's WRMSSE scales, kept as running sums per node so that a new day costs the same at any history.

The scale of a series (bottom or aggregated) is M5's: the mean of its squared one-step
differences over its whole history from its first non-zero value,

    scale = sum_{t > first} (y_t - y_{t-1})^2 / (days after first)

``ScaleState`` keeps, per node of the hierarchy, the sum of those squares, the number of steps,
the first day with a non-zero value (``NOT_STARTED`` before it) and the last value, all as of
``last_day``. ``advance`` folds in the next days (one or many at once, vectorised over nodes and
days alike), ``rewind`` gives the state as of an earlier day from the days after it (a backtest's
cutoff lies 28 days before today), and ``scales`` divides. Unit sales are whole numbers, so
every sum is exact in float64 (below 2**53) and the order of additions changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m5ops.errors import DataError
from m5ops.evaluation.hierarchy import Hierarchy

NOT_STARTED = -1  # first_day of a node that has had no non-zero value yet
FIELDS = ("sum_sq", "steps", "first_day", "last_value")
BLOCK_DAYS = 64  # days folded in at a time from a history: bounds memory at the full M5 shape (~0.3 GB)


@dataclass(frozen=True)
class ScaleState:
    """Running scale sums of every node as of ``last_day`` (arrays in the hierarchy's node order)."""

    last_day: int
    sum_sq: np.ndarray  # float64: sum of squared steps since the first non-zero value
    steps: np.ndarray  # int64: days since the first non-zero value
    first_day: np.ndarray  # int64: day of the first non-zero value, NOT_STARTED if none
    last_value: np.ndarray  # float64: the value on last_day

    @classmethod
    def empty(cls, n_nodes: int, day_before: int) -> "ScaleState":
        """The state before any day: nothing seen up to ``day_before``."""
        return cls(int(day_before), np.zeros(n_nodes), np.zeros(n_nodes, dtype=np.int64),
                   np.full(n_nodes, NOT_STARTED, dtype=np.int64), np.zeros(n_nodes))

    @classmethod
    def of_sales(cls, hierarchy: Hierarchy, sales: np.ndarray, first_day: int) -> "ScaleState":
        """The state of every node after the bottom series' ``sales`` (series x days, from ``first_day``)."""
        state = cls.empty(hierarchy.n_nodes, int(first_day) - 1)
        return state.advance_sales(hierarchy, sales)

    def advance_sales(self, hierarchy: Hierarchy, sales: np.ndarray) -> "ScaleState":
        """The state after the bottom series' ``sales`` of the days following ``last_day``, a block at a time."""
        state = self
        for start in range(0, np.shape(sales)[1], BLOCK_DAYS):
            state = state.advance(hierarchy.aggregate(sales[:, start:start + BLOCK_DAYS]))
        return state

    @property
    def n_nodes(self) -> int:
        return len(self.sum_sq)

    def advance(self, values: np.ndarray) -> "ScaleState":
        """The state after the days following ``last_day`` whose node values are ``values`` (nodes x days)."""
        values = self._check(values, "advance")
        day_one = self.last_day + 1
        nonzero = values != 0
        # a step onto day t counts once some day before t had a value: before the block, or earlier in it
        seen_in_block = np.logical_or.accumulate(nonzero, axis=1)
        started = (self.first_day != NOT_STARTED)[:, None] | np.pad(seen_in_block[:, :-1], ((0, 0), (1, 0)))
        previous = np.concatenate([self.last_value[:, None], values[:, :-1]], axis=1)
        squares = np.where(started, np.square(values - previous), 0.0)
        newly = (self.first_day == NOT_STARTED) & seen_in_block[:, -1]
        first_day = np.where(newly, day_one + nonzero.argmax(axis=1), self.first_day)
        return ScaleState(self.last_day + values.shape[1], self.sum_sq + squares.sum(axis=1),
                          self.steps + started.sum(axis=1), first_day, values[:, -1].copy())

    def rewind(self, day: int, values: np.ndarray) -> "ScaleState":
        """The state as of ``day``, from the node values of days ``day..last_day`` (nodes x days).

        The steps after ``day`` are taken back out: exactly, since every sum is of whole numbers.
        """
        values = np.asarray(values, dtype=np.float64)
        if not day <= self.last_day or values.shape != (self.n_nodes, self.last_day - day + 1):
            raise DataError(f"rewinding scales from day {self.last_day} to day {day} needs the values of days "
                            f"{day}..{self.last_day} ({self.n_nodes} x {self.last_day - day + 1}), got {values.shape}")
        if not np.array_equal(values[:, -1], self.last_value):
            raise DataError(f"the values given for day {self.last_day} are not the ones the scale state holds; "
                            "the state and the store disagree (rebuild the scale state)")
        days = np.arange(day + 1, self.last_day + 1)
        started = self.first_day != NOT_STARTED
        counted = started[:, None] & (self.first_day[:, None] < days[None, :])
        squares = np.where(counted, np.square(np.diff(values, axis=1)), 0.0)
        first_day = np.where(started & (self.first_day <= day), self.first_day, NOT_STARTED)
        return ScaleState(int(day), self.sum_sq - squares.sum(axis=1), self.steps - counted.sum(axis=1),
                          first_day, values[:, 0].copy())

    def scales(self) -> np.ndarray:
        """Each node's scale; 0 where it has no step yet (never sold, or first sold on ``last_day``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.steps > 0, self.sum_sq / np.maximum(self.steps, 1), 0.0)

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-node arrays by name (``FIELDS``), for storing."""
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def from_arrays(cls, last_day: int, arrays: dict[str, np.ndarray]) -> "ScaleState":
        """A state from stored arrays; a DataError when one is missing or their lengths differ."""
        missing = [name for name in FIELDS if name not in arrays]
        lengths = {len(arrays[name]) for name in FIELDS if name in arrays}
        if missing or len(lengths) != 1:
            raise DataError(f"scale state arrays are incomplete (missing {missing}, lengths {sorted(lengths)})")
        return cls(int(last_day), np.asarray(arrays["sum_sq"], dtype=np.float64),
                   np.asarray(arrays["steps"], dtype=np.int64), np.asarray(arrays["first_day"], dtype=np.int64),
                   np.asarray(arrays["last_value"], dtype=np.float64))

    def _check(self, values: np.ndarray, doing: str) -> np.ndarray:
        """Node values as float64 (nodes x days, at least one day, finite); else a DataError."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != self.n_nodes or values.shape[1] == 0:
            raise DataError(f"cannot {doing} the scale state of {self.n_nodes} nodes with values of shape "
                            f"{values.shape}; expected ({self.n_nodes}, n_days)")
        if not np.isfinite(values).all():
            raise DataError(f"cannot {doing} the scale state: the values hold NaN or inf; sales must be counts")
        return values
