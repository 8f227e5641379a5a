"""The metrics history in ``runs.db``: one row per (simulated day, model, version, metric, scope).

The scope of a row is its ``source`` (``backtest``: the test window at that day; ``live``: an
issued forecast scored against what then happened), its ``level`` (``all``, or a WRMSSE level
1-12), and on live rows its ``horizon`` and ``issue_day`` (both 0 on backtest rows). Readers
that ask for nothing else get the overall backtest rows, as before these scopes existed.
"""
from __future__ import annotations


import pandas as pd

from m5ops.stores.rundb import RunDbStore
from m5ops.stores.sqlite import placeholders

METRIC_COLUMNS = ["sim_day", "sim_date", "model", "version", "metric", "value",
                  "window_start", "window_end", "run_id", "source", "level", "horizon", "issue_day", "excluded"]
OVERALL_BACKTEST = "source = 'backtest' AND level = 'all' AND horizon = 0"
HISTORY_COLUMNS = ["sim_day", "model", "version", "metric", "value"]
# every metric of each (model, version) on the last day it was evaluated
_LATEST_SQL = f"""
SELECT m.model, m.version, m.metric, m.value FROM metrics AS m
JOIN (SELECT model, version, max(sim_day) AS day FROM metrics WHERE {OVERALL_BACKTEST}
      GROUP BY model, version) AS last
  ON m.model = last.model AND m.version = last.version AND m.sim_day = last.day
WHERE m.source = 'backtest' AND m.level = 'all' AND m.horizon = 0"""


class MetricStore(RunDbStore):
    """The ``metrics`` table of the ``runs.db`` at ``path``."""

    def record(self, sim_day: int, sim_date: str, model: str, version: str,
               values: dict[str, float], window: tuple[int, int], run_id: str | None = None, *,
               source: str = "backtest", level: str = "all", horizon: int = 0, issue_day: int = 0,
               excluded: int | None = None) -> None:
        """Store one evaluation of one scope; evaluating it again replaces it whole."""
        start, end = (int(day) for day in window)
        scope = (source, str(level), int(horizon), int(issue_day))
        rows = [(int(sim_day), str(sim_date), model, version, name,
                 None if value is None else float(value), start, end, run_id, *scope, excluded)
                for name, value in values.items()]
        with self.db.connect(write=True) as conn:
            # delete first so a re-evaluation with fewer metrics leaves no stale ones behind
            conn.execute("DELETE FROM metrics WHERE sim_day = ? AND model = ? AND version = ? AND source = ?"
                         " AND level = ? AND horizon = ? AND issue_day = ?", (int(sim_day), model, version, *scope))
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

    def history_of(self, metric: str) -> pd.DataFrame:
        """One metric's history (day, model, version, metric, value), oldest day first."""
        rows = self.db.read("SELECT sim_day, model, version, metric, value FROM metrics"
                            f" WHERE metric = ? AND {OVERALL_BACKTEST} ORDER BY sim_day, model", [metric])
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
            f"SELECT model FROM metrics WHERE {OVERALL_BACKTEST} GROUP BY model ORDER BY min(sim_day), model")]
