"""The metrics history: one row per (simulated day, model, version, metric) in ``runs.db``."""
from __future__ import annotations

import os

import pandas as pd

from m5ops.stores.rundb import open_rundb

METRIC_COLUMNS = ["sim_day", "sim_date", "model", "version", "metric", "value",
                  "window_start", "window_end", "run_id"]
HISTORY_COLUMNS = ["sim_day", "model", "version", "metric", "value"]
# every metric of each (model, version) on the last day it was evaluated
_LATEST_SQL = """
SELECT m.model, m.version, m.metric, m.value FROM metrics AS m
JOIN (SELECT model, version, max(sim_day) AS day FROM metrics GROUP BY model, version) AS last
  ON m.model = last.model AND m.version = last.version AND m.sim_day = last.day"""


class MetricStore:
    """The ``metrics`` table of the ``runs.db`` at ``path``."""

    def __init__(self, path: str | os.PathLike):
        self.db = open_rundb(path)
        self.path = self.db.path

    def __repr__(self) -> str:
        return f"MetricStore({str(self.path)!r})"

    def record(self, sim_day: int, sim_date: str, model: str, version: str,
               values: dict[str, float], window: tuple[int, int], run_id: str | None = None) -> None:
        """Store one evaluation; evaluating the same day and version again replaces it whole."""
        start, end = (int(day) for day in window)
        rows = [(int(sim_day), str(sim_date), model, version, name,
                 None if value is None else float(value), start, end, run_id)
                for name, value in values.items()]
        with self.db.connect(write=True) as conn:
            # delete first so a re-evaluation with fewer metrics leaves no stale ones behind
            conn.execute("DELETE FROM metrics WHERE sim_day = ? AND model = ? AND version = ?",
                         (int(sim_day), model, version))
            conn.executemany(f"INSERT OR REPLACE INTO metrics ({', '.join(METRIC_COLUMNS)})"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def history(self, model: str | None = None) -> pd.DataFrame:
        """The whole history (one row per day, model, version, metric), oldest day first."""
        where, args = ("WHERE model = ?", [model]) if model is not None else ("", [])
        rows = self.db.read(f"SELECT {', '.join(METRIC_COLUMNS)} FROM metrics {where}"
                            " ORDER BY sim_day, model, version, metric", args)
        frame = pd.DataFrame.from_records([tuple(row) for row in rows], columns=METRIC_COLUMNS)
        return frame.astype({"sim_day": "int64", "value": "float64",
                             "window_start": "Int64", "window_end": "Int64"})

    def history_of(self, metric: str) -> pd.DataFrame:
        """One metric's history (day, model, version, metric, value), oldest day first."""
        rows = self.db.read("SELECT sim_day, model, version, metric, value FROM metrics"
                            " WHERE metric = ? ORDER BY sim_day, model", [metric])
        return pd.DataFrame.from_records([tuple(row) for row in rows], columns=HISTORY_COLUMNS).astype(
            {"sim_day": "int64", "value": "float64"})

    def fingerprint(self) -> tuple:
        """A cheap key that changes whenever the table does (count, newest day, sum, newest run)."""
        return tuple(self.db.read("SELECT count(*), max(sim_day), total(value), max(run_id) FROM metrics")[0])

    def latest_rows(self) -> list[tuple]:
        """(model, version, metric, value) of each version's latest evaluated day."""
        return [tuple(row) for row in self.db.read(_LATEST_SQL)]

    def models_by_first_day(self) -> list[str]:
        """Every model with metrics, in the order they were first evaluated."""
        return [row[0] for row in self.db.read(
            "SELECT model FROM metrics GROUP BY model ORDER BY min(sim_day), model")]
