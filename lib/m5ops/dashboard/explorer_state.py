"""What the forecast explorer shows, as plain data: the nodes of the hierarchy, and any node's actuals,
backtests and issued forecasts, summed from the series' by the hierarchy's own summing matrix.

Nothing here touches a widget. The expensive parts are read once and kept at the series level:
the actuals of the last ``ACTUAL_DAYS`` days (once per day), each model version's backtest over
the test window (once per version and window: at the full M5 shape a backtest means reading
850k feature rows and a model's prediction, seconds to a minute), and each issue read from the
ledger (a few recent ones). A node is then one sparse row of the summing matrix times those
(series x days) matrices: milliseconds at 30,490 series, so that changing the node never waits
on a store.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from m5ops.data.schema import day_date
from m5ops.evaluation.hierarchy import LEVEL_TITLES, Hierarchy
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import ForecastLedger

log = logging.getLogger("m5ops.dashboard.explorer")
ACTUAL_DAYS = 112
# the levels offered, as (hierarchy level, title): the ones a planner looks at, down to one series
LEVELS = (("Level1", "total"), ("Level2", "state"), ("Level3", "store"), ("Level4", "category"),
          ("Level5", "department"), ("Level9", "store x department"), ("Level10", "item"),
          ("Level12", "series (item x store)"))
ISSUES_KEPT = 16  # issues held in memory (about 3.4 MB each at the full shape)
LATEST = "latest"


@dataclass(frozen=True)
class Node:
    """One aggregated series of the hierarchy: its level, its name, its row of the summing matrix."""

    level: str
    name: str
    row: int


class NodeIndex:
    """Every node of the offered levels, by name, with a case-insensitive search."""

    def __init__(self, hierarchy: Hierarchy):
        self.hierarchy = hierarchy
        table = hierarchy.table
        names = np.where(table["agg_level_2"].to_numpy() == "X", table["agg_level_1"].to_numpy(),
                         table["agg_level_1"].astype(str) + " x " + table["agg_level_2"].astype(str))
        self._names: dict[str, np.ndarray] = {}
        self._lower: dict[str, pd.Series] = {}
        self._rows: dict[str, np.ndarray] = {}
        for level, _ in LEVELS:
            rows = np.flatnonzero(table["level"].to_numpy() == level)
            order = np.argsort(names[rows], kind="stable")  # alphabetical: what a person scans
            self._rows[level], self._names[level] = rows[order], names[rows][order].astype(str)
            self._lower[level] = pd.Series(self._names[level]).str.lower()
        self._by_name = {(level, name): int(row) for level in self._rows
                         for name, row in zip(self._names[level], self._rows[level])}

    def count(self, level: str) -> int:
        return len(self._rows[level])

    def first(self, level: str) -> Node:
        return Node(level, str(self._names[level][0]), int(self._rows[level][0]))

    def node(self, level: str, name: str) -> Node | None:
        row = self._by_name.get((level, name))
        return None if row is None else Node(level, name, row)

    def search(self, level: str, text: str, limit: int = 100) -> tuple[list[str], int]:
        """The names of ``level`` containing every word of ``text`` (any case): the first ``limit``, and how many match."""
        words = [word for word in text.lower().split() if word]
        if not words:
            return self._names[level][:limit].tolist(), self.count(level)
        match = np.ones(self.count(level), dtype=bool)
        for word in words:
            match &= self._lower[level].str.contains(word, regex=False).to_numpy()
        found = self._names[level][match]
        return found[:limit].tolist(), len(found)


@dataclass(frozen=True)
class Backtest:
    """One model version's forecast of the test window, per series: ``values`` (n_series, days from ``start_day``)."""

    model: str
    version: str
    start_day: int
    values: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class IssuedValues:
    """One issue of the ledger, per series: ``values`` (n_series, 28) for days ``issue_day+1..issue_day+28``."""

    model: str
    version: str
    issue_day: int
    values: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Line:
    """One line of the chart: its label, its kind (actual, backtest, issued, next), its model, days and values."""

    label: str
    kind: str
    model: str | None
    first_day: int
    values: np.ndarray

    @property
    def days(self) -> np.ndarray:
        return np.arange(self.first_day, self.first_day + len(self.values))


def node_values(hierarchy: Hierarchy, row: int, matrix: np.ndarray) -> np.ndarray:
    """A node's values (days) from the series' (series x days): its row of the summing matrix times them.

    The row is read off the CSR arrays directly: ``matrix[row] @ values`` would first convert
    the whole float32 (series x days) matrix to float64, 40-60 ms a node at the full shape.
    """
    summing = hierarchy.matrix
    start, end = summing.indptr[row], summing.indptr[row + 1]
    columns, weights = summing.indices[start:end], summing.data[start:end]
    rows = matrix if end - start == matrix.shape[0] else matrix[columns]  # the total: every series, no copy
    if np.all(weights == 1.0):
        return rows.sum(axis=0, dtype=np.float64)
    return weights @ rows.astype(np.float64)


def dates_of(days: np.ndarray) -> np.ndarray:
    """The calendar dates of day numbers, as datetime64 (what bqplot's DateScale reads)."""
    return day_date(np.asarray(days, dtype=int)).to_numpy()


class ExplorerReader:
    """The explorer's data of one workspace, read once at the series level and kept.

    Safe to call from a worker thread while the event loop reads what is already kept: each
    cache is replaced whole, never changed in place.
    """

    def __init__(self, workspace: Workspace, store):
        self.workspace, self.store = workspace, store
        self.ledger = ForecastLedger.of(workspace)
        self._lock = threading.Lock()  # one loader at a time: two would compute the same backtest twice
        self._index: NodeIndex | None = None
        self._actuals: tuple[int, int, np.ndarray] | None = None  # (today, first day, series x days)
        self._backtests: dict[str, Backtest] = {}  # model -> its current version's backtest of the current window
        self._issues: OrderedDict[tuple[str, int], IssuedValues] = OrderedDict()
        self._issue_days: dict[str, list[int]] = {}

    # -- what is kept (cheap; the event loop reads these) -----------------------------------------
    @property
    def index(self) -> NodeIndex | None:
        return self._index

    def actuals(self) -> tuple[int, np.ndarray] | None:
        """(first day, series x days) of the kept actuals, or None before the first load."""
        return None if self._actuals is None else self._actuals[1:]

    def backtest(self, model: str, version: str, start_day: int) -> Backtest | None:
        kept = self._backtests.get(model)
        return kept if kept is not None and (kept.version, kept.start_day) == (version, start_day) else None

    def issue(self, model: str, issue_day: int) -> IssuedValues | None:
        return self._issues.get((model, issue_day))

    def issue_days(self, model: str) -> list[int]:
        return self._issue_days.get(model, [])

    # -- loading (slow; off the event loop) --------------------------------------------------------
    def load_index(self) -> NodeIndex:
        if self._index is None:
            self._index = NodeIndex(Hierarchy.of(self.store.series()))
        return self._index

    def load_actuals(self, today: int) -> None:
        """The actuals of the last ``ACTUAL_DAYS`` stored days, re-read on a new day."""
        if self._actuals is not None and self._actuals[0] == today:
            return
        first = max(self.store.first_day(), today - ACTUAL_DAYS + 1)
        sales, _ = self.store.read_matrix(first, today)
        self._actuals = (today, first, sales)

    def load_issue_days(self, models: list[str]) -> None:
        self._issue_days = {name: self.ledger.issue_days(name) for name in models}

    def load_backtests(self, versions: dict[str, str], test_range: tuple[int, int], on_step=None) -> list[str]:
        """Compute the backtest of each model's current version over ``test_range`` not kept yet; returns failures."""
        from m5ops.pipeline.modeling import WorkspaceData, forecast_matrix, load_current, test_input

        missing = [name for name, version in versions.items() if self.backtest(name, version, test_range[0]) is None]
        failed: list[str] = []
        if not missing:
            return failed
        with self._lock:
            data = WorkspaceData.open(self.workspace.home)
            if data.split.test_range() != tuple(test_range):  # a day arrived meanwhile: the next load catches up
                return failed
            inp = None
            kept = dict(self._backtests)
            for name in missing:
                if on_step:
                    on_step(f"computing the backtest of {name} {versions[name]} (once per version and day)")
                try:
                    loaded = load_current(data, name)
                    if loaded is None or loaded[1]["id"] != versions[name]:
                        continue
                    inp = inp if inp is not None else test_input(data)
                    values = forecast_matrix(loaded[0], inp, len(data.series)).astype(np.float32)
                    kept[name] = Backtest(name, versions[name], inp.start_day, values)
                except Exception as exc:  # one broken artifact must not hide the other models
                    log.warning("explorer: backtest of %s %s failed: %s", name, versions[name], exc)
                    failed.append(f"{name}: {type(exc).__name__}: {exc}")
            self._backtests = {name: kept[name] for name in kept if name in versions}
        return failed

    def load_issue(self, model: str, issue_day: int) -> IssuedValues | None:
        """One issue from the ledger, kept among the last ``ISSUES_KEPT`` read."""
        key = (model, issue_day)
        if key in self._issues:
            return self._issues[key]
        if not self.ledger.has_issue(model, issue_day):
            return None
        issue = self.ledger.read_issue(model, issue_day)
        issues = OrderedDict(self._issues)
        issues[key] = IssuedValues(model, issue.version, issue.issue_day, np.asarray(issue.values, dtype=np.float32))
        while len(issues) > ISSUES_KEPT:
            issues.popitem(last=False)
        self._issues = issues
        return issues[key]


def issue_day_for(pick: str | int, days: list[int]) -> int | None:
    """The issue day a pick means for one model: its latest issue, or the picked day if it issued then."""
    if not days:
        return None
    if pick == LATEST:
        return days[-1]
    return int(pick) if int(pick) in days else None


def node_lines(reader: ExplorerReader, node: Node, versions: dict[str, str], test_range: tuple[int, int],
               pick: str | int) -> list[Line]:
    """The lines of one node from what ``reader`` keeps: actuals, then each model's backtest, issue and latest issue.

    The latest issue is drawn as "next 28 days" only when a past issue was picked (else it is the
    picked one).
    """
    hierarchy, lines = reader.index.hierarchy, []
    actuals = reader.actuals()
    if actuals is not None:
        lines.append(Line("actual", "actual", None, actuals[0], node_values(hierarchy, node.row, actuals[1])))
    for name, version in versions.items():
        backtest = reader.backtest(name, version, test_range[0])
        if backtest is not None:
            lines.append(Line(f"{name} {version} backtest", "backtest", name, backtest.start_day,
                              node_values(hierarchy, node.row, backtest.values)))
    for name in versions:
        days = reader.issue_days(name)
        picked, latest = issue_day_for(pick, days), issue_day_for(LATEST, days)
        for kind, day in (("issued", picked), ("next", latest if latest != picked else None)):
            issued = reader.issue(name, day) if day is not None else None
            if issued is not None:
                title = f"issued {_short_date(day)}" if kind == "issued" else "next 28 days"
                lines.append(Line(f"{name} {issued.version} {title}", kind, name, day + 1,
                                  node_values(hierarchy, node.row, issued.values)))
    return lines


def wanted_issues(reader: ExplorerReader, models: list[str], pick: str | int) -> list[tuple[str, int]]:
    """The (model, issue day) pairs ``node_lines`` would draw that are not kept yet."""
    wanted = []
    for name in models:
        days = reader.issue_days(name)
        for day in {issue_day_for(pick, days), issue_day_for(LATEST, days)} - {None}:
            if reader.issue(name, day) is None:
                wanted.append((name, day))
    return wanted


def _short_date(day: int) -> str:
    return str(day_date(np.array([day]))[0].date())


def level_title(level: str) -> str:
    return dict(LEVELS).get(level, LEVEL_TITLES.get(level, level))


def node_title(node: Node) -> str:
    """``total``, ``store CA_1``, ``series (item x store) FOODS_1_001 x CA_1``."""
    return "total" if node.level == "Level1" else f"{level_title(node.level)} {node.name}"

