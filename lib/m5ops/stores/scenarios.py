"""Demand scenarios in ``runs.db``: what multiplies the sales of arriving days, and where it did.

A scenario multiplies the sales of every day arriving in ``from_day..to_day`` (``to_day`` None:
open-ended) by ``factor``, for the series of one slice (a store, a category, a department, or
any combination; None is every value). It is never deleted: ``remove`` marks it removed, so the
days it was applied to (``scenario_days``, written by each arrival) stay explained.

Kept in ``runs.db`` rather than in a JSON file: each change is one SQLite transaction, so two
``scenario add`` at once get their own ids and nothing is lost, with no lock file of its own;
readers (the arrival, the dashboard) never wait (WAL); and the arrival's record of the days it
scaled lives beside them.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from m5ops.data.schema import day_label
from m5ops.errors import ParameterError
from m5ops.stores.clock import utc_now
from m5ops.stores.rundb import RunDbStore

_COLUMNS = "id, from_day, to_day, factor, store, category, department, added_at, removed_at"
SLICE_COLUMNS = {"store": "store_id", "category": "cat_id", "department": "dept_id"}  # field -> series column


@dataclass(frozen=True)
class Scenario:
    """One demand scenario, as stored."""

    id: int
    from_day: int
    to_day: int | None
    factor: float
    store: str | None = None
    category: str | None = None
    department: str | None = None
    added_at: str = ""
    removed_at: str | None = None

    active = property(lambda self: self.removed_at is None)

    def covers(self, day: int) -> bool:
        """Whether ``day`` lies in the scenario's days (whether or not it is still active)."""
        return self.from_day <= day and (self.to_day is None or day <= self.to_day)

    def slice(self) -> dict[str, str]:
        """The series it touches, as series column -> value (empty: every series)."""
        return {column: getattr(self, name) for name, column in SLICE_COLUMNS.items() if getattr(self, name)}

    def label(self) -> str:
        """'#3 FOODS x1.60 from d_1890' : one line for the CLI, the dashboard and the notebook."""
        where = " ".join(v for v in (self.store, self.category, self.department) if v) or "all series"
        start = day_label(self.from_day)
        days = f"{start}..{day_label(self.to_day)}" if self.to_day is not None else f"from {start}"
        return f"#{self.id} {where} x{self.factor:.2f} {days}"

    def as_dict(self) -> dict:
        """Plain JSON-ready dict, with its label."""
        return {**asdict(self), "label": self.label(), "active": self.active}


def _scenario(row) -> Scenario:
    return Scenario(**dict(row))


class ScenarioStore(RunDbStore):
    """The ``scenarios`` and ``scenario_days`` tables of the ``runs.db`` at ``path``."""

    def add(self, from_day: int, to_day: int | None, factor: float, store: str | None = None,
            category: str | None = None, department: str | None = None) -> Scenario:
        """Record a scenario (checked by the caller: ``pipeline.scenarios.add_scenario``); returns it with its id."""
        with self.db.connect(write=True) as conn:
            row = conn.execute(f"INSERT INTO scenarios (from_day, to_day, factor, store, category, department,"
                               f" added_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
                               (int(from_day), None if to_day is None else int(to_day), float(factor), store,
                                category, department, utc_now())).fetchone()
        return _scenario(row)

    def remove(self, scenario_id: int) -> Scenario:
        """Mark an active scenario removed (later arrivals are untouched); ParameterError naming the active ones."""
        with self.db.connect(write=True) as conn:
            row = conn.execute(f"UPDATE scenarios SET removed_at = ? WHERE id = ? AND removed_at IS NULL"
                               f" RETURNING {_COLUMNS}", (utc_now(), int(scenario_id))).fetchone()
            if row is None:
                active = [r["id"] for r in
                          conn.execute("SELECT id FROM scenarios WHERE removed_at IS NULL ORDER BY id")]
                gone = conn.execute("SELECT 1 FROM scenarios WHERE id = ?", (int(scenario_id),)).fetchone()
        if row is None:
            listed = ", ".join(f"#{i}" for i in active) or "none"
            raise ParameterError(f"no active scenario #{scenario_id}{' (it was removed already)' if gone else ''};"
                                f" active scenarios: {listed} (see 'm5ops scenario list')")
        return _scenario(row)

    def scenarios(self, include_removed: bool = False) -> list[Scenario]:
        """The active scenarios (and the removed ones too if asked), oldest first."""
        where = "" if include_removed else "WHERE removed_at IS NULL"
        return [_scenario(r) for r in self.db.read(f"SELECT {_COLUMNS} FROM scenarios {where} ORDER BY id")]

    def get(self, scenario_id: int) -> Scenario:
        """One scenario, active or removed; ParameterError if there is none."""
        rows = self.db.read(f"SELECT {_COLUMNS} FROM scenarios WHERE id = ?", [int(scenario_id)])
        if not rows:
            raise ParameterError(f"no scenario #{scenario_id} (see 'm5ops scenario list --all')")
        return _scenario(rows[0])

    def applying_on(self, day: int) -> list[Scenario]:
        """The active scenarios whose days include ``day``: what the arrival of ``day`` applies."""
        return [s for s in self.scenarios() if s.covers(day)]

    def upcoming(self, today: int) -> list[Scenario]:
        """The active scenarios some day after ``today`` still falls in (the dashboard's header shows them)."""
        return [s for s in self.scenarios() if s.to_day is None or s.to_day > today]

    # -- the days they were applied to -----------------------------------------------------------
    def record_applied(self, day: int, applied: Iterable[tuple[int, float, int]]) -> None:
        """What the arrival of ``day`` applied, as (scenario id, factor, series touched); replaces an earlier record."""
        with self.db.connect(write=True) as conn:
            conn.execute("DELETE FROM scenario_days WHERE day = ?", (int(day),))
            conn.executemany("INSERT INTO scenario_days (day, scenario, factor, series) VALUES (?, ?, ?, ?)",
                             [(int(day), int(i), float(f), int(n)) for i, f, n in applied])

    def forget_day(self, day: int) -> None:
        """Drop the record of ``day`` (its arrival was taken back)."""
        with self.db.connect(write=True) as conn:
            conn.execute("DELETE FROM scenario_days WHERE day = ?", (int(day),))

    def applied_between(self, first: int, last: int) -> list[tuple[int, Scenario]]:
        """(day, scenario) for every scenario applied to a day in first..last, by day."""
        rows = self.db.read(f"SELECT d.day AS applied_day, {', '.join('s.' + c.strip() for c in _COLUMNS.split(','))}"
                            " FROM scenario_days d JOIN scenarios s ON s.id = d.scenario"
                            " WHERE d.day BETWEEN ? AND ? ORDER BY d.day, s.id", [int(first), int(last)])
        return [(row["applied_day"], Scenario(**{k: row[k] for k in row.keys() if k != "applied_day"})) for row in rows]

    def days_applied(self) -> dict[int, int]:
        """How many arrived days each scenario was applied to, by scenario id."""
        return {row["scenario"]: row["n"] for row in
                self.db.read("SELECT scenario, COUNT(*) AS n FROM scenario_days GROUP BY scenario")}
