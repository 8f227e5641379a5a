"""The metrics history in ``runs.db``: one row per (simulated day, model, version, metric, scope).

The scope of a row is its ``source`` (``backtest``: the test window at that day; ``live``: an
issued forecast scored against what then happened), its ``level`` (``all``, or a WRMSSE level
1-12), and on live rows its ``horizon`` and ``issue_day`` (both 0 on backtest rows). Readers
that ask for nothing else get the overall backtest rows, as before these scopes existed.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from m5ops.stores.rundb import RunDbStore
from m5ops.stores.sqlite import placeholders

METRIC_COLUMNS = ["sim_day", "sim_date", "model", "version", "metric", "value",
                  "window_start", "window_end", "run_id", "source", "level", "horizon", "issue_day", "excluded"]
OVERALL_BACKTEST = "source = 'backtest' AND level = 'all' AND horizon = 0"
LEVEL_BACKTEST = "source = 'backtest' AND level = ? AND horizon = 0"
LEVELLED_METRIC = "wrmsse"  # the metric stored per level (1-12 and all), whose rows carry ``excluded``
HISTORY_COLUMNS = ["sim_day", "model", "version", "metric", "value"]
# every metric of each (model, version) on the last day it was evaluated, with the series left out
_LATEST_SQL = f"""
SELECT m.model, m.version, m.metric, m.value, m.excluded FROM metrics AS m
JOIN (SELECT model, version, max(sim_day) AS day FROM metrics WHERE {OVERALL_BACKTEST}
      GROUP BY model, version) AS last
  ON m.model = last.model AND m.version = last.version AND m.sim_day = last.day
WHERE m.source = 'backtest' AND m.level = 'all' AND m.horizon = 0"""


def _stored(value: float | None) -> float | None:
    """A value as stored: None for a missing or undefined one (NaN, inf), so no reader ever sees those."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Evaluation:
    """The metrics of one scope: a version on a day, from one source, level, horizon and issue day."""

    sim_day: int
    sim_date: str
    model: str
    version: str
    values: dict[str, float]
    window: tuple[int, int]
    run_id: str | None = None
    source: str = "backtest"
    level: str = "all"
    horizon: int = 0
    issue_day: int = 0
    excluded: int | None = None

    def key(self) -> tuple:
        """The columns that identify the scope (the metrics table's key without the metric)."""
        return (int(self.sim_day), self.model, self.version, self.source, str(self.level), int(self.horizon),
                int(self.issue_day))

    def rows(self) -> list[tuple]:
        """One row of ``METRIC_COLUMNS`` per metric."""
        start, end = (int(day) for day in self.window)
        return [(int(self.sim_day), str(self.sim_date), self.model, self.version, name,
                 _stored(value), start, end, self.run_id, self.source, str(self.level),
                 int(self.horizon), int(self.issue_day), self.excluded) for name, value in self.values.items()]


class MetricStore(RunDbStore):
    """The ``metrics`` table of the ``runs.db`` at ``path``."""

    def record(self, sim_day: int, sim_date: str, model: str, version: str,
               values: dict[str, float], window: tuple[int, int], run_id: str | None = None, *,
               source: str = "backtest", level: str = "all", horizon: int = 0, issue_day: int = 0,
               excluded: int | None = None) -> None:
        """Store one evaluation of one scope; evaluating it again replaces it whole."""
        self.record_all([Evaluation(sim_day, sim_date, model, version, values, window, run_id, source=source,
                                    level=level, horizon=horizon, issue_day=issue_day, excluded=excluded)])

    def record_all(self, evaluations: Iterable["Evaluation"]) -> None:
        """Store several evaluations in one transaction (all or none), each replacing its scope whole."""
        with self.db.connect(write=True) as conn:
            for evaluation in evaluations:
                # delete first so a re-evaluation with fewer metrics leaves no stale ones behind
                conn.execute("DELETE FROM metrics WHERE sim_day = ? AND model = ? AND version = ? AND source = ?"
                             " AND level = ? AND horizon = ? AND issue_day = ?", evaluation.key())
                conn.executemany(f"INSERT OR REPLACE INTO metrics ({', '.join(METRIC_COLUMNS)})"
                                 f" VALUES ({placeholders(METRIC_COLUMNS)})", evaluation.rows())

    def record_levels(self, sim_day: int, sim_date: str, model: str, version: str,
                      levels: dict[str, dict[str, float | None]], window: tuple[int, int],
                      run_id: str | None = None, *, excluded: dict[str, int] | None = None,
                      excluded_metrics: tuple[str, ...] = (LEVELLED_METRIC,), source: str = "backtest",
                      horizon: int = 0, issue_day: int = 0) -> None:
        """Store one evaluation at several levels in one transaction; each level's scope is replaced whole.

        ``levels`` maps a level (``all``, ``1``..``12``) to its metric values; ``excluded`` maps a
        level to the series its WRMSSE left out, stored on that level's ``excluded_metrics`` rows.
        """
        start, end = (int(day) for day in window)
        excluded = excluded or {}
        rows, scopes = [], []
        for level, values in levels.items():
            scope = (source, str(level), int(horizon), int(issue_day))
            scopes.append(scope)
            left_out = excluded.get(level)
            rows += [(int(sim_day), str(sim_date), model, version, name, _stored(value), start, end, run_id, *scope,
                      None if left_out is None or name not in excluded_metrics else int(left_out))
                     for name, value in values.items()]
        with self.db.connect(write=True) as conn:
            # delete first so a re-evaluation with fewer metrics leaves no stale ones behind
            conn.executemany("DELETE FROM metrics WHERE sim_day = ? AND model = ? AND version = ? AND source = ?"
                             " AND level = ? AND horizon = ? AND issue_day = ?",
                             [(int(sim_day), model, version, *scope) for scope in scopes])
            conn.executemany(f"INSERT OR REPLACE INTO metrics ({', '.join(METRIC_COLUMNS)})"
                             f" VALUES ({placeholders(METRIC_COLUMNS)})", rows)

    def history(self, model: str | None = None, *, source: str | None = "backtest",
                level: str | None = "all") -> pd.DataFrame:
        """The history (one row per day, model, version, metric, scope), oldest day first.

        By default the overall backtest rows; ``source``/``level`` None takes every one.
        """
        clauses, args = ["1"], []
        for column, value in (("model", model), ("source", source), ("level", level)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(str(value))
        if source == "backtest":
            clauses.append("horizon = 0")
        rows = self.db.read(f"SELECT {', '.join(METRIC_COLUMNS)} FROM metrics WHERE {' AND '.join(clauses)}"
                            " ORDER BY sim_day, model, version, metric, source, level, issue_day, horizon", args)
        frame = pd.DataFrame.from_records([tuple(row) for row in rows], columns=METRIC_COLUMNS)
        return frame.astype({"sim_day": "int64", "value": "float64", "window_start": "Int64",
                             "window_end": "Int64", "horizon": "int64", "issue_day": "int64", "excluded": "Int64"})

    def history_of(self, metric: str, level: str = "all") -> pd.DataFrame:
        """One metric's backtest history at one level (day, model, version, metric, value, excluded), oldest first."""
        rows = self.db.read("SELECT sim_day, model, version, metric, value, excluded FROM metrics"
                            f" WHERE metric = ? AND {LEVEL_BACKTEST} ORDER BY sim_day, model", [metric, str(level)])
        return pd.DataFrame.from_records([tuple(row) for row in rows], columns=[*HISTORY_COLUMNS, "excluded"]).astype(
            {"sim_day": "int64", "value": "float64", "excluded": "Int64"})

    def live_of(self, metric: str, horizon: int) -> pd.DataFrame:
        """One live metric at one horizon (0: per complete issue window): day, model, version, issue day, value."""
        rows = self.db.read("SELECT sim_day, model, version, metric, value, issue_day FROM metrics WHERE metric = ?"
                            " AND source = 'live' AND level = 'all' AND horizon = ? ORDER BY sim_day, model, issue_day",
                            [metric, int(horizon)])
        return pd.DataFrame.from_records([tuple(row) for row in rows], columns=[*HISTORY_COLUMNS, "issue_day"]).astype(
            {"sim_day": "int64", "value": "float64", "issue_day": "int64"})

    def fingerprint(self) -> tuple:
        """A cheap key that changes whenever the table does (count, newest day, sum, newest run)."""
        return tuple(self.db.read("SELECT count(*), max(sim_day), total(value), max(run_id) FROM metrics")[0])

    def latest_rows(self) -> list[tuple]:
        """(model, version, metric, value, excluded) of each version's latest evaluated day (overall rows)."""
        return [tuple(row) for row in self.db.read(_LATEST_SQL)]

    def models_by_first_day(self) -> list[str]:
        """Every model with metrics, in the order they were first evaluated."""
        return [row[0] for row in self.db.read(
            f"SELECT model FROM metrics WHERE {OVERALL_BACKTEST} GROUP BY model ORDER BY min(sim_day), model")]
