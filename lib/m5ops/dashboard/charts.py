"""bqplot charts: a metric over simulated time (one line per model), and recent total sales.

Every date axis shows days (``DATE_FORMAT``, ticks on whole days from ``date_ticks``: left to
itself d3 puts hourly ticks such as "06 AM" on a span of a few days), and a chart with nothing
to draw says why, and when it will fill, in the chart itself (``EmptyNote``).

The metric chart is one ``Lines`` mark holding one line per model over the union of evaluated
days (NaN where a model has no value, drawn as a gap), so that 20 models and a year of days
stay one mark to draw. Redrawn only when the chosen metric, level, models or the history
changed. WRMSSE can be shown at each of its 12 levels (the level picker); its note says how many
series each model's latest value left out for lack of a scale.
"""
from __future__ import annotations

import html
from collections.abc import Callable

import bqplot as bq
import ipywidgets as w
import numpy as np
import pandas as pd

from m5ops.dashboard.state import BACKTEST, METRICS, SCOPES, WINDOW, latest_excluded, metric_lines
from m5ops.dashboard.widgets import css
from m5ops.evaluation.hierarchy import METRIC_LEVELS, OVERALL, level_title
from m5ops.evaluation.metrics import excluded_note
from m5ops.stores.metrics import LEVELLED_METRIC

PALETTE = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000",
           "#ee7733", "#0077bb", "#33bbee", "#ee3377", "#cc3311", "#009988", "#882255", "#999933",
           "#117733", "#332288", "#ddcc77", "#88ccee"]


DATE_FORMAT = "%b %d"
TICK_STEPS_DAYS = (1, 2, 7, 14, 28, 56, 91, 182, 364)
MAX_DATE_TICKS = 9


def date_ticks(first, last) -> np.ndarray | None:
    """Tick dates on whole days from ``first`` to ``last`` (datetimes), at most ``MAX_DATE_TICKS``; None when empty.

    Steps of 1, 2, 7, 14 or more days, on the days counted from ``first``: the ticks are the
    data's own midnights, so they read the same in every time zone (the axis formats in UTC).
    """
    if first is None or last is None or pd.isna(first) or pd.isna(last):
        return None
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    span = max((last - first).days, 0)
    step = next((s for s in TICK_STEPS_DAYS if span // s + 1 <= MAX_DATE_TICKS), TICK_STEPS_DAYS[-1])
    return pd.date_range(first, last, freq=f"{step}D").to_numpy()


def date_axis(scale, label: str = "date") -> bq.Axis:
    """A horizontal date axis that shows days (see ``date_ticks``)."""
    return bq.Axis(scale=scale, label=label, grid_lines="none", tick_format=DATE_FORMAT)


def set_date_ticks(axis: bq.Axis, *date_arrays) -> None:
    """Put ``axis``'s ticks on whole days over the span of the given date arrays.

    No dates: the axis is hidden (d3 would label an empty domain "Jan 01"; the chart's
    ``EmptyNote`` says why it is empty). One date: the scale spans the day before to the day
    after, so the point sits on its tick rather than in a domain of zero width.
    """
    values = [np.asarray(a, dtype="datetime64[ns]").ravel() for a in date_arrays if a is not None and np.size(a)]
    values = [v[~np.isnat(v)] for v in values]
    values = [v for v in values if len(v)]
    if not values:
        if axis.visible:
            axis.visible = False
        return
    first, last = min(v.min() for v in values), max(v.max() for v in values)
    scale, day = axis.scale, np.timedelta64(1, "D")
    bounds = (first - day, last + day) if first == last else (None, None)
    if (scale.min, scale.max) != bounds:
        scale.min, scale.max = bounds
    ticks = date_ticks(*(bounds if first == last else (first, last)))
    if axis.tick_values is None or not np.array_equal(np.asarray(axis.tick_values, dtype="datetime64[ns]"),
                                                      ticks.astype("datetime64[ns]")):
        axis.tick_values = ticks
    if not axis.visible:
        axis.visible = True


MIDDLE_NOTE_Y, TOP_NOTE_Y = 0.55, 0.95  # where an EmptyNote sits, on its chart's 0..1 height


class EmptyNote:
    """A line of text in a chart saying why it is empty and when it will fill; hidden otherwise.

    A ``Label`` mark on its own 0..1 scales, so it stays put whatever the data's scales do: in
    the middle of an empty chart, along its top when part of it is drawn (``over_data``: the
    actuals are there, the forecasts not yet), where it covers no line.
    """

    def __init__(self, figure: bq.Figure, cls: str = "m5-empty-note"):
        scales = {"x": bq.LinearScale(min=0.0, max=1.0), "y": bq.LinearScale(min=0.0, max=1.0)}
        self.label = bq.Label(x=[0.5], y=[MIDDLE_NOTE_Y], scales=scales, text=[""], align="middle", default_size=14,
                              font_weight="normal", colors=["#666666"], apply_clip=False)
        self.figure, self.text, self.cls = figure, "", cls
        figure.marks = [*figure.marks, self.label]

    def show(self, text: str, over_data: bool = False) -> None:
        """Say ``text`` in the chart (empty: say nothing), along its top if ``over_data``."""
        height = [TOP_NOTE_Y if over_data else MIDDLE_NOTE_Y]
        if list(self.label.y) != height:
            self.label.y = height
        if text != self.text:
            self.text = text
            self.label.text = [text]
            (self.figure.add_class if text else self.figure.remove_class)(self.cls)


def color_of(name: str, order: list[str]) -> str:
    """A stable colour per model: its position among every model ever seen."""
    return PALETTE[order.index(name) % len(PALETTE)] if name in order else PALETTE[0]


def _figure(title: str, x_scale, y_scale, marks, y_label: str, cls: str, **layout) -> bq.Figure:
    """A figure with date and value axes."""
    axes = [date_axis(x_scale, "simulated date"),
            bq.Axis(scale=y_scale, orientation="vertical", label=y_label, tick_format=".3g")]
    figure = bq.Figure(marks=marks, axes=axes, title=title, animation_duration=0,
                       fig_margin={"top": 40, "bottom": 45, "left": 65, "right": 160},
                       legend_location="top-right", layout=w.Layout(width="100%", height="360px", **layout))
    return css(figure, cls)


class MetricChart:
    """The monitoring chart with its controls: metric, scores (backtest or live), WRMSSE level, models, deleted models."""

    def __init__(self, on_metric: Callable[[], None] | None = None):
        self.history = pd.DataFrame(columns=["sim_day", "model", "version", "metric", "value", "excluded"])
        self.history_metric = "wmape"  # the metric whose history ``history`` holds
        self.history_scope = BACKTEST  # in which scope (the backtest, or live by horizon or issue window)
        self.history_level = OVERALL  # and at which level
        self.on_metric = on_metric  # asks for the newly chosen metric's (or level's) history, read off the event loop
        self.live: list[str] = []
        self.deleted: list[str] = []
        self.order: list[str] = []  # every model seen, for stable colours
        self._all_chosen = True  # until the user picks models, every model is shown
        self._syncing = False
        self._drawn = None
        self._history_version = 0
        self.metric = css(w.Dropdown(options=[(label, key) for key, label in METRICS.items()], value="wmape",
                                     description="metric", layout=w.Layout(width="260px")), "m5-metric-choice")
        self.scope = css(w.Dropdown(options=[(label, key) for key, label in SCOPES.items()], value=BACKTEST,
                                    description="scores", layout=w.Layout(width="260px")), "m5-scope-choice")
        self.level = css(w.Dropdown(options=[(level_title(key), key) for key in METRIC_LEVELS], value=OVERALL,
                                    description="level", disabled=True, layout=w.Layout(width="260px")),
                         "m5-level-choice")
        self.models = css(w.SelectMultiple(options=[], rows=6, description="models",
                                           layout=w.Layout(width="260px")), "m5-model-choice")
        self.show_deleted = css(w.Checkbox(value=False, description="show deleted models", indent=False),
                                "m5-show-deleted")
        self.note = css(w.HTML(""), "m5-chart-note")
        self.x, self.y = bq.DateScale(), bq.LinearScale()
        self.lines = bq.Lines(x=np.array([], dtype="datetime64[ns]"), y=[], scales={"x": self.x, "y": self.y},
                              display_legend=True, labels=[], colors=PALETTE, stroke_width=2,
                              tooltip=bq.Tooltip(fields=["name"], labels=["model"]))
        self.figure = _figure("Metric over simulated time", self.x, self.y, [self.lines], "WMAPE", "m5-metric-chart")
        self.empty = EmptyNote(self.figure)
        self.metric.observe(self._metric_chosen, names="value")
        self.scope.observe(self._metric_chosen, names="value")
        self.level.observe(lambda _: self.on_metric and self.on_metric(), names="value")
        self.show_deleted.observe(lambda _: self._sync_options(), names="value")
        self.models.observe(self._user_chose, names="value")
        self.widget = css(w.VBox([w.HTML("<h3>Monitoring</h3>"),
                                  w.HBox([self.figure, w.VBox([self.metric, self.scope, self.level, self.models, self.show_deleted, self.note],
                                                              layout=w.Layout(min_width="280px"))])]),
                          "m5-monitoring")

    def _metric_chosen(self, _change=None) -> None:
        """Only backtest WRMSSE has levels: the level picker serves it alone; then ask for the new history."""
        self.level.disabled = not self._levelled()
        if self.on_metric:
            self.on_metric()

    def chosen_level(self) -> str:
        """The level to read: the picked one for WRMSSE, the overall value of any other metric."""
        return self.level.value if self._levelled() else OVERALL

    def _levelled(self) -> bool:
        """Whether the chosen metric and scope have levels (backtest WRMSSE)."""
        return self.metric.value == LEVELLED_METRIC and self.scope.value == BACKTEST

    def update(self, history: pd.DataFrame, live: tuple[str, ...], deleted: tuple[str, ...],
               metric: str = "wmape", scope: str = BACKTEST, level: str = OVERALL) -> None:
        """New data (``metric``'s history in ``scope``, at ``level``): keep the choice of models, redraw what changed."""
        if history is not self.history:
            self.history, self._history_version = history, self._history_version + 1
        self.history_metric, self.history_scope, self.history_level = metric, scope, level
        self.live, self.deleted = list(live), list(deleted)
        for name in [*live, *deleted]:
            if name not in self.order:
                self.order.append(name)
        self._sync_options()

    def _offered(self) -> list[str]:
        return self.live + (self.deleted if self.show_deleted.value else [])

    def _sync_options(self) -> None:
        """Offer the live (and maybe deleted) models; keep the choice, or all while untouched."""
        offered = self._offered()
        chosen = offered if self._all_chosen else [m for m in self.models.value if m in offered]
        self._syncing = True
        try:
            if list(self.models.options) != offered:
                self.models.options = offered
            if list(self.models.value) != chosen:
                self.models.value = chosen
        finally:
            self._syncing = False
        self.draw()

    def _user_chose(self, change) -> None:
        """A selection made by the user (not by a refresh) fixes the set of models shown."""
        if self._syncing:
            return
        self._all_chosen = set(change["new"]) == set(self._offered())
        self.draw()

    def chosen(self) -> list[str]:
        """The models drawn, in the order offered."""
        return [m for m in self._offered() if m in self.models.value]

    def draw(self) -> None:
        """Redraw the lines of the chosen metric and models when they differ from what is drawn."""
        metric, models = self.history_metric, self.chosen()
        key = (metric, self.history_scope, self.history_level, tuple(models), self._history_version,
               tuple(self.deleted))
        if key == self._drawn:
            return
        self._drawn = key
        dates, lines = metric_lines(self.history, metric, models) if len(self.history) else (None, {})
        names = [m for m in models if m in lines]
        with self.lines.hold_sync():
            if names:
                self.lines.x, self.lines.y = two_dimensional(dates, [lines[m] for m in names])
            else:
                self.lines.x, self.lines.y = np.array([], dtype="datetime64[ns]"), []
            self.lines.labels = [f"{m} (deleted)" if m in self.deleted else m for m in names]
            self.lines.colors = [color_of(m, self.order) for m in names] or PALETTE
            self.lines.marker = "circle" if names and len(dates) <= 30 else None
        set_date_ticks(self.figure.axes[0], dates if names else None)
        self.empty.show("" if names else _empty_text(self.history_metric, self.history_scope, models))
        self.figure.axes[1].label = self._label()
        self.figure.title = f"{METRICS[metric]} over simulated time: {SCOPES[self.history_scope]}"
        self.note.value = self._note(models, lines)

    def _label(self) -> str:
        """The value axis: the metric, and the WRMSSE level when it is not the overall value."""
        label = METRICS[self.history_metric]
        return label if self.history_level == OVERALL else f"{label}, {level_title(self.history_level)}"

    def _note(self, models: list[str], lines: dict) -> str:
        """Models without values yet, and the series each model's latest WRMSSE left out."""
        missing = [m for m in models if m not in lines]
        notes = [_missing_note(self.history_metric, self.history_scope, missing)] if missing else []
        notes += [f"{model}: {excluded_note(count)}" for model, count in latest_excluded(self.history, models).items()]
        return "".join(f"<small class='m5-chart-note-line'>{html.escape(note)}</small><br>" for note in notes)


def _missing_note(metric: str, scope: str, missing: list[str]) -> str:
    """Why some chosen models have no line."""
    if scope == WINDOW and metric != "wrmsse":
        return "per issue window only WRMSSE is scored: pick WRMSSE, or a horizon"
    why = "" if scope == BACKTEST else " (live scores come as the days an issued forecast covers arrive)"
    return f"no {METRICS[metric]} yet for: {', '.join(missing)}{why}"


def _empty_text(metric: str, scope: str, models: list[str]) -> str:
    """What the empty metric chart says: why nothing is drawn and when something will be."""
    if not models:
        return "no model chosen: pick one or more models on the right"
    if scope == WINDOW and metric != "wrmsse":
        return "per issue window only WRMSSE is scored: pick WRMSSE, or a horizon"
    if scope == BACKTEST:
        return f"no {METRICS[metric]} yet: each tick's evaluation scores every model with a version"
    return (f"no live {METRICS[metric]} yet: scored as the days an issued forecast covers arrive"
            " (from the tick after the first issue)")


def two_dimensional(dates: np.ndarray, values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """x and a 2-D y that bqplot reads as one line per row.

    bqplot squeezes its arrays, so a single day would read as one line through every model:
    that day is doubled (a line of length zero, drawn by its markers).
    """
    y = np.vstack(values)
    if y.shape[1] == 1:
        dates, y = np.repeat(dates, 2), np.repeat(y, 2, axis=1)
    return dates, y


class TotalsChart:
    """Total unit sales of the recent stored days, with rows, series and held-back days left."""

    def __init__(self):
        self.x, self.y = bq.DateScale(), bq.LinearScale()
        self.line = bq.Lines(x=np.array([], dtype="datetime64[ns]"), y=[], scales={"x": self.x, "y": self.y},
                             colors=["#4477aa"], stroke_width=2)
        self.figure = _figure("Total sales of recent days", self.x, self.y, [self.line], "units, all series",
                              "m5-totals-chart")
        self.figure.fig_margin = {"top": 40, "bottom": 45, "left": 65, "right": 20}
        self.figure.layout.height = "280px"
        self.empty = EmptyNote(self.figure)
        self.facts = css(w.HTML(""), "m5-data-facts")
        self._drawn = None
        self.widget = css(w.VBox([w.HTML("<h3>Data</h3>"), self.facts, self.figure]), "m5-data")

    def update(self, totals: tuple, facts: str) -> None:
        """Redraw on a new day; refresh the facts line."""
        if self.facts.value != facts:
            self.facts.value = facts
        if totals == self._drawn:
            return
        self._drawn = totals
        dates, values = totals
        with self.line.hold_sync():
            self.line.x = pd.to_datetime(list(dates)).to_numpy()
            self.line.y = np.asarray(values, dtype=float)
        set_date_ticks(self.figure.axes[0], self.line.x)
        self.empty.show("" if len(dates) else "no stored day yet: 'm5ops init' stores the history")
