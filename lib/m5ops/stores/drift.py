"""The drift history in ``runs.db``: one row per (evaluated day, model, version, column).

A row holds a column's PSI, normalised Wasserstein distance (numeric) or Jensen-Shannon distance
(categorical), the sample sizes, and both windows compared: the version's training window (the
reference) and the last days (the current data). The target's row has ``is_target`` set.
Recording a version's drift on a day replaces what that day held for it.
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from m5ops.stores.rundb import RunDbStore
from m5ops.stores.sqlite import placeholders

DRIFT_COLUMNS = ["sim_day", "model", "version", "column", "kind", "is_target", "psi", "wasserstein",
                 "jensen_shannon", "n_reference", "n_current", "reference_start", "reference_end",
                 "current_start", "current_end", "run_id"]
_SELECT = ", ".join(f'"{c}"' for c in DRIFT_COLUMNS)
_TYPES = {"sim_day": "int64", "is_target": "bool", "psi": "float64", "wasserstein": "float64",
          "jensen_shannon": "float64", "n_reference": "int64", "n_current": "int64"}


def _frame(rows) -> pd.DataFrame:
    """Rows of the drift table as a typed frame (NULL statistics as NaN)."""
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=DRIFT_COLUMNS)
    return frame.astype(_TYPES)


class DriftStore(RunDbStore):
    """The ``drift`` table of the ``runs.db`` at ``path``."""

    def record(self, sim_day: int, model: str, version: str, columns: Iterable[dict],
               reference: tuple[int, int], current: tuple[int, int], run_id: str | None = None) -> int:
        """Store one version's drift on one day (each column a ``ColumnDrift.as_dict()``); rows written."""
        keys = (int(sim_day), model, version)
        windows = (*(int(d) for d in reference), *(int(d) for d in current))
        rows = [(*keys, c["column"], c["kind"], int(bool(c["is_target"])), c["psi"], c["wasserstein"],
                 c["jensen_shannon"], int(c["n_reference"]), int(c["n_current"]), *windows, run_id) for c in columns]
        with self.db.connect(write=True) as conn:
            # replaced whole, so a re-evaluation that compares fewer columns leaves no stale rows
            conn.execute("DELETE FROM drift WHERE sim_day = ? AND model = ? AND version = ?", keys)
            conn.executemany(f"INSERT INTO drift ({_SELECT}) VALUES ({placeholders(DRIFT_COLUMNS)})", rows)
        return len(rows)

    def latest(self, model: str | None = None) -> pd.DataFrame:
        """Every column of each model's latest recorded day (its version then), by model then PSI, highest first."""
        where, args = ("WHERE model = ?", [model]) if model else ("", [])
        rows = self.db.read(
            f"SELECT {', '.join('d.' + c for c in _SELECT.split(', '))} FROM drift AS d"
            f" JOIN (SELECT model, max(sim_day) AS day FROM drift {where} GROUP BY model) AS last"
            " ON d.model = last.model AND d.sim_day = last.day"
            " ORDER BY d.model, d.is_target DESC, d.psi IS NULL, d.psi DESC, d.\"column\"", args)
        return _frame(rows)

    def target_history(self, model: str | None = None) -> pd.DataFrame:
        """The target's drift over time (one row per day, model, version), oldest first."""
        where, args = ("AND model = ?", [model]) if model else ("", [])
        return _frame(self.db.read(f"SELECT {_SELECT} FROM drift WHERE is_target = 1 {where}"
                                   " ORDER BY sim_day, model, version", args))

    def latest_target(self) -> dict[str, dict]:
        """Each model's target row of its latest recorded day, by model (what the drift alert reads)."""
        rows = self.db.read(
            f"SELECT {', '.join('d.' + c for c in _SELECT.split(', '))} FROM drift AS d"
            " JOIN (SELECT model, max(sim_day) AS day FROM drift WHERE is_target = 1 GROUP BY model) AS last"
            " ON d.model = last.model AND d.sim_day = last.day WHERE d.is_target = 1 ORDER BY d.model")
        return {row["model"]: row for row in _frame(rows).to_dict("records")}

    def fingerprint(self) -> tuple:
        """A cheap key that changes whenever the table does."""
        return tuple(self.db.read("SELECT count(*), max(sim_day), total(psi), max(run_id) FROM drift")[0])
