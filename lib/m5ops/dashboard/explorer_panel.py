"""The forecast explorer: forecasts rather than scores, for any node of the hierarchy.

Pick a level and a node (a search box narrows the nodes; at the full M5 shape a level holds up
to 30,490), the models and an issue (the latest, or one picked by issue day). The chart shows
the node's actuals of the last 112 days, each chosen model's backtest over the test window, its
issued forecast and, when a past issue is picked, its latest issue (the next 28 days); points
have tooltips. Aggregates are sums of the series' values through the hierarchy's summing matrix
(``explorer_state``).

What is slow (the actuals, a version's backtest, an issue from the ledger) is read in a worker
thread once and kept at the series level; every widget change happens on the kernel's event
loop. Changing the node only multiplies kept matrices by one row of the summing matrix, so it
redraws at once.
"""
from __future__ import annotations

import asyncio
import html
import logging
import os
import time

import bqplot as bq
import ipywidgets as w
import numpy as np

from m5ops.dashboard.charts import EmptyNote, color_of, date_axis, set_date_ticks
from m5ops.dashboard.explorer_state import (ACTUAL_DAYS, LATEST, LEVELS, ExplorerReader, Line, Node, dates_of,
                                            issue_day_for, level_title, node_lines, node_title, wanted_issues)
from m5ops.dashboard.widgets import css
from m5ops.data.schema import day_label
from m5ops.data.split import Split
from m5ops.stores.layout import Workspace

log = logging.getLogger("m5ops.dashboard.explorer")
ACTUAL_COLOR = "#333333"
MATCHES_SHOWN = 200
RESEND_S = 20.0  # after a load applied off the notebook's run, the chart is sent again on each refresh this long
STYLES = {"backtest": "solid", "issued": "dashed", "next": "dotted"}
# the tooltip points are there to be hovered, not seen; a rule rather than the mark's opacity,
# because bqplot draws the points a data update adds without the mark's styles (black dots)
HIDDEN_POINTS = "<style>.m5-explorer-chart .dot {opacity: 0 !important}</style>"


class ExplorerPanel:
    """The forecast explorer panel; ``update`` is called with each dashboard snapshot."""

    def __init__(self, workspace: Workspace, store):
        self.workspace, self.store = workspace, store
        self.reader = ExplorerReader(workspace, store)
        self.today: int | None = None
        self.versions: dict[str, str] = {}  # model -> current version
        self.test_range: tuple[int, int] | None = None
        self.node: Node | None = None
        self.order: list[str] = []  # every model seen, for stable colours
        self._all_chosen, self._syncing = True, False
        self._loading = self._again = False
        self._loaded_key: tuple | None = None
        self._failed: list[str] = []
        self._backtests_pending = False
        self._resend_until = 0.0  # see _wait_for_visitor
        self.last_draw_s: float | None = None  # the kernel's share of the last redraw (for the benchmark)

        self.level = css(w.Dropdown(options=[(title, level) for level, title in LEVELS], value="Level1",
                                    description="level", layout=w.Layout(width="300px")), "m5-explorer-level")
        self.search = css(w.Text(value="", placeholder="search: e.g. CA_1, FOODS_3, HOBBIES_1_001", description="find",
                                 continuous_update=True, layout=w.Layout(width="300px")), "m5-explorer-search")
        self.nodes = css(w.Select(options=[], rows=8, description="node", layout=w.Layout(width="300px")),
                         "m5-explorer-node")
        self.count = css(w.HTML(""), "m5-explorer-count")
        self.models = css(w.SelectMultiple(options=[], rows=4, description="models", layout=w.Layout(width="300px")),
                          "m5-explorer-models")
        self.issue = css(w.Dropdown(options=[("latest issue", LATEST)], value=LATEST, description="issue",
                                    layout=w.Layout(width="300px")), "m5-explorer-issue")
        self.note = css(w.HTML(""), "m5-explorer-note")
        self.legend = css(w.HTML(""), "m5-explorer-legend")  # beside the chart: bqplot's own sits on the lines
        self.x, self.y = bq.DateScale(), bq.LinearScale(min=0.0)
        self.marks = {kind: bq.Lines(x=np.array([], dtype="datetime64[ns]"), y=[], scales={"x": self.x, "y": self.y},
                                     labels=[], colors=[ACTUAL_COLOR], display_legend=False,
                                     stroke_width=2.5 if kind == "actual" else 2, line_style=STYLES.get(kind, "solid"),
                                     tooltip=bq.Tooltip(fields=["name"], labels=["line"]))
                      for kind in ("actual", "backtest", "issued", "next")}
        self.points = bq.Scatter(x=np.array([], dtype="datetime64[ns]"), y=[], names=[], display_names=False,
                                 scales={"x": self.x, "y": self.y}, colors=["#888888"], default_size=12,
                                 opacities=[0.0], stroke=None,
                                 tooltip=bq.Tooltip(fields=["name", "x", "y"], formats=["", "%b %d %Y", ".4g"],
                                                    labels=["line", "date", "units"]))
        axes = [date_axis(self.x), bq.Axis(scale=self.y, orientation="vertical", label="units", tick_format="~s")]
        self.figure = css(bq.Figure(marks=[*self.marks.values(), self.points], axes=axes, title="Forecast explorer",
                                    animation_duration=0, legend_location="top-left",
                                    fig_margin={"top": 40, "bottom": 45, "left": 65, "right": 20},
                                    layout=w.Layout(width="100%", height="420px")), "m5-explorer-chart")
        self.empty = EmptyNote(self.figure)
        self.empty.show("loading the hierarchy and the last 112 days of actuals..")
        self.level.observe(self._level_chosen, names="value")
        self.search.observe(lambda _: self._show_matches(), names="value")
        self.nodes.observe(self._node_chosen, names="value")
        self.models.observe(self._models_chosen, names="value")
        self.issue.observe(lambda _: self._changed(), names="value")
        controls = w.VBox([self.level, self.search, self.nodes, self.count, self.models, self.issue],
                          layout=w.Layout(min_width="320px"))
        self.widget = css(w.VBox([w.HTML(f"{HIDDEN_POINTS}<h3>Forecast explorer</h3>"), self.note,
                                  w.HBox([w.VBox([self.figure, self.legend], layout=w.Layout(width="100%")),
                                          controls])]), "m5-explorer")

    # -- from the dashboard's snapshot ---------------------------------------------------------
    def update(self, today: int, models: dict[str, dict]) -> None:
        """A new snapshot: load what a new day or a new version needs (off the loop), keep the choices."""
        versions = {name: model["current_version"] for name, model in models.items() if model.get("current_version")}
        if today != self.today:
            self.today = today
            self.test_range = Split(self.store.first_day(), today, self.workspace.config().test_days).test_range()
        self.versions = versions
        for name in versions:
            if name not in self.order:
                self.order.append(name)
        self._sync_models()
        self._load()
        if time.monotonic() < self._resend_until:
            for widget in (*self.marks.values(), self.points, self.figure, self.legend, self.note, self.nodes,
                           self.issue, self.count):
                widget.send_state()

    def _sync_models(self) -> None:
        offered = list(self.versions)
        chosen = offered if self._all_chosen else [m for m in self.models.value if m in offered]
        self._syncing = True
        try:
            if list(self.models.options) != offered:
                self.models.options = offered
            if list(self.models.value) != chosen:
                self.models.value = chosen
        finally:
            self._syncing = False

    def chosen_versions(self) -> dict[str, str]:
        return {name: self.versions[name] for name in self.models.value if name in self.versions}

    # -- loading off the loop ------------------------------------------------------------------
    def _load(self) -> None:
        """Load the actuals, backtests and issues the current choice needs, in a worker thread; then draw."""
        key = (self.today, tuple(sorted(self.versions.items())), self.issue.value, tuple(self.models.value),
               self._ledger_key())
        if key == self._loaded_key:
            return
        if self._loading:
            self._again = True
            return
        self._loading, self._again = True, False
        today, versions, test_range, pick = self.today, dict(self.versions), self.test_range, self.issue.value
        todo = [name for name, version in versions.items()
                if self.reader.backtest(name, version, test_range[0]) is None]
        if todo:
            self._set_note(f"computing the backtest of {', '.join(todo)} over the test window"
                           f" {day_label(test_range[0])}..{day_label(test_range[1])} (once per version and day)..")

        def fast():  # about a second at the full shape: the chart shows the actuals and issues meanwhile
            self.reader.load_index()
            self.reader.load_actuals(today)
            self.reader.load_issue_days(list(versions))
            for name, day in wanted_issues(self.reader, list(versions), pick):
                self.reader.load_issue(name, day)
            return []

        def slow():  # seconds to a minute a version at the full shape, once per version and day
            _wait_for_visitor()
            return self.reader.load_backtests(versions, test_range)

        def done(failed: list[str] | None, error: BaseException | None, last: bool) -> None:
            self._failed = list(failed or []) + ([f"{type(error).__name__}: {error}"] if error else [])
            if error is not None:
                log.error("explorer: loading failed: %s", error)
            if last or error is not None:
                self._loading = False
                if error is None:
                    self._loaded_key = key
            try:
                self._after_load(loading=not last and error is None)
            except Exception:  # a drawing error must not stop the loads that follow
                log.exception("explorer: drawing after a load failed")
            self._resend_until = time.monotonic() + RESEND_S
            if not last and error is None:
                _off_loop(slow, lambda result, exc: done(result, exc, True))
            elif self._again:
                self._load()

        first = self.reader.index is None  # the first load: in place, so the first page already shows the data
        _off_loop(fast, lambda result, exc: done(result, exc, not todo), in_place=first)

    def _ledger_key(self) -> tuple:
        """Changes when an issue day is added (a new issue loads and the picker offers it)."""
        folder = self.reader.ledger.root
        try:
            stat = folder.stat()
        except FileNotFoundError:
            return ()
        return (stat.st_mtime_ns,)

    def _after_load(self, loading: bool = False) -> None:
        """Bring the node list and the issue picker up to date, then draw (``loading``: backtests still to come)."""
        index = self.reader.index
        if index is None:
            self._set_note("<span class='m5-explorer-failed'>" + html.escape("; ".join(self._failed)) + "</span>")
            return
        if self.node is None:
            self.node = index.first(self.level.value)
            self._show_matches()
        self._sync_issues()
        self._backtests_pending = loading
        self.draw()

    def _sync_issues(self) -> None:
        days = sorted({day for name in self.models.value for day in self.reader.issue_days(name)}, reverse=True)
        options = [("latest issue", LATEST)] + [(f"{day_label(day)} ({_date(day)})", day) for day in days]
        if list(self.issue.options) != options:
            keep = self.issue.value if self.issue.value in [v for _, v in options] else LATEST
            self._syncing = True
            try:
                self.issue.options = options
                self.issue.value = keep
            finally:
                self._syncing = False

    # -- the user's choices --------------------------------------------------------------------
    def _level_chosen(self, _change) -> None:
        index = self.reader.index
        if index is None:
            return
        self.node = index.first(self.level.value)
        self._show_matches()
        self.draw()

    def _show_matches(self) -> None:
        """The nodes of the level matching the search (the first ``MATCHES_SHOWN``), the drawn one selected."""
        index = self.reader.index
        if index is None:
            return
        names, total = index.search(self.level.value, self.search.value, MATCHES_SHOWN)
        self._syncing = True
        try:
            if list(self.nodes.options) != names:
                self.nodes.options = names
            current = self.node.name if self.node and self.node.level == self.level.value else None
            self.nodes.value = current if current in names else None
        finally:
            self._syncing = False
        shown = f"the first {len(names)} of " if total > len(names) else ""
        self.count.value = (f"<small class='m5-explorer-matches'>{shown}{total:,} of {index.count(self.level.value):,}"
                            f" {html.escape(level_title(self.level.value))} node(s) match</small>")

    def _node_chosen(self, change) -> None:
        if self._syncing or change["new"] is None or self.reader.index is None:
            return
        node = self.reader.index.node(self.level.value, change["new"])
        if node is not None and node != self.node:
            self.node = node
            self.draw()

    def _models_chosen(self, change) -> None:
        if self._syncing:
            return
        self._all_chosen = set(change["new"]) == set(self.versions)
        self._changed()

    def _changed(self) -> None:
        """Models or issue changed: draw what is kept now, and load what is missing."""
        if self._syncing:
            return
        self._sync_issues()
        self.draw()
        self._load()

    # -- drawing -------------------------------------------------------------------------------
    def draw(self) -> None:
        """Redraw the chart for the current node, models and issue from what the reader keeps."""
        if self.node is None or self.reader.index is None or self.test_range is None:
            return
        started = time.perf_counter()
        lines = node_lines(self.reader, self.node, self.chosen_versions(), self.test_range, self.issue.value)
        by_kind = {kind: [line for line in lines if line.kind == kind] for kind in self.marks}
        all_dates = []
        with self.figure.hold_sync():
            for kind, mark in self.marks.items():
                x, y, labels = _mark_data(by_kind[kind])
                with mark.hold_sync():
                    mark.x, mark.y = x, y
                    mark.labels = labels
                    mark.colors = [ACTUAL_COLOR if line.model is None else color_of(line.model, self.order)
                                   for line in by_kind[kind]] or [ACTUAL_COLOR]
                all_dates.append(x)
            px, py, names = _points(lines)
            with self.points.hold_sync():
                self.points.x, self.points.y, self.points.names = px, py, names
            set_date_ticks(self.figure.axes[0], *all_dates)
            self.empty.show(self._empty_text(lines), over_data=bool(lines))
            self.figure.title = f"{node_title(self.node)}: actuals, backtests and forecasts"
        self._set_note(self._note_text(lines))
        legend = legend_html(lines, self.order)
        if self.legend.value != legend:
            self.legend.value = legend
        self.last_draw_s = time.perf_counter() - started

    def _empty_text(self, lines: list[Line]) -> str:
        """Why the chart lacks its forecasts, and when they come; empty when it has them."""
        if not lines:
            return "no stored day yet: 'm5ops init' stores the history"
        if not self.versions:
            return "no model has a version yet: backtests and forecasts come after the first training"
        if not self.models.value:
            return "no model chosen: pick models on the right to see their backtests and forecasts"
        if not any(line.kind in ("issued", "next") for line in lines):
            if self.issue.value != LATEST:
                return "the chosen models did not issue that day: pick another issue day, or the latest issue"
            return "no issued forecast yet: the first issue comes with the next tick"
        return ""

    def _note_text(self, lines: list[Line]) -> str:
        """Which issue each model shows, which were not issued, and anything that failed to load."""
        parts = [f"actuals of the last {ACTUAL_DAYS} days, backtests over the test window"
                 f" {day_label(self.test_range[0])}..{day_label(self.test_range[1])}"]
        for name in self.models.value:
            days = self.reader.issue_days(name)
            if issue_day_for(self.issue.value, days) is None:
                parts.append(f"{name}: no issue {'yet' if not days else 'that day'}")
        if self._backtests_pending:
            parts.append("computing the backtests (once per version and day)..")
        parts += [f"failed: {text}" for text in self._failed]
        return "<small class='m5-explorer-facts'>" + html.escape("; ".join(parts)) + "</small>"

    def _set_note(self, text: str) -> None:
        if self.note.value != text:
            self.note.value = text


_visited = False  # whether this kernel's page was asked for (a pre-heated kernel waits for that)


def _wait_for_visitor() -> None:
    """In a pre-heated Voila kernel, block (a worker thread) until the page is asked for.

    The page carries the widgets' state as it was when the notebook ended; a change made after
    that and before the browser connects never reaches it. So the slow loads start only once a
    visitor asks, and ``ExplorerPanel.update`` sends the chart again for a while after each one.
    """
    global _visited
    if _visited or os.environ.get("VOILA_PREHEAT", "False") == "False":
        return
    try:
        from voila.utils import wait_for_request
        wait_for_request()
        _visited = True
    except Exception as exc:  # never keep the backtests from loading
        log.warning("explorer: could not wait for the visitor's request: %s", exc)


def _off_loop(work, then, in_place: bool = False) -> None:
    """Run ``work`` in a worker thread and ``then(result, error)`` on the event loop; in place without a loop."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if in_place or loop is None or not loop.is_running():  # no event loop (a script or a test)
        try:
            result = work()
        except Exception as exc:
            then(None, exc)
        else:
            then(result, None)
        return
    def finished(future) -> None:
        try:
            then(None, future.exception()) if future.exception() else then(future.result(), None)
        except Exception:  # a callback's error would vanish in asyncio's log: say it in ours
            log.exception("explorer: applying a load failed")
    loop.run_in_executor(None, work).add_done_callback(finished)


def legend_html(lines: list[Line], order: list[str]) -> str:
    """The legend under the chart: a sample of each line (colour and dash) and its label."""
    items = []
    for line in lines:
        color = ACTUAL_COLOR if line.model is None else color_of(line.model, order)
        dash = {"issued": "dashed", "next": "dotted"}.get(line.kind, "solid")
        items.append(f"<span class='m5-legend-item m5-legend-{line.kind}' style='margin-right:16px;white-space:nowrap'>"
                     f"<span style='display:inline-block;width:26px;margin:0 5px 3px 0;border-top:3px {dash} {color}'>"
                     f"</span>{html.escape(line.label)}</span>")
    return f"<div style='font-size:12px;line-height:20px;margin-left:65px'>{''.join(items)}</div>"


def _date(day: int) -> str:
    return str(dates_of(np.array([day]))[0])[:10]


def _mark_data(lines: list[Line]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """x (dates), y and labels for one Lines mark holding ``lines``: 2-D x and y, NaN-padded to one length."""
    if not lines:
        return np.array([], dtype="datetime64[ns]"), np.array([]), []
    if len(lines) == 1:
        return dates_of(lines[0].days), lines[0].values, [lines[0].label]
    width = max(len(line.values) for line in lines)
    x = np.empty((len(lines), width), dtype="datetime64[ns]")
    y = np.full((len(lines), width), np.nan)
    for i, line in enumerate(lines):
        n = len(line.values)
        days = np.concatenate([line.days, np.full(width - n, line.days[-1])])  # padding repeats the last day, y NaN
        x[i], y[i, :n] = dates_of(days), line.values
    return x, y, [line.label for line in lines]


def _points(lines: list[Line]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every point of every line, for the tooltips: its date, value and line label."""
    if not lines:
        return np.array([], dtype="datetime64[ns]"), np.array([]), np.array([], dtype=object)
    x = np.concatenate([dates_of(line.days) for line in lines])
    y = np.concatenate([line.values for line in lines])
    names = np.concatenate([np.full(len(line.values), line.label, dtype=object) for line in lines])
    return x, y, names
