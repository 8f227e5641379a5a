"""bqplot charts: a metric over simulated time (one line per model), and recent total sales.

The metric chart is one ``Lines`` mark holding one line per model over the union of evaluated
days (NaN where a model has no value, drawn as a gap), so that 20 models and a year of days
stay one mark to draw. Redrawn only when the chosen metric, the chosen models or the history
changed.
"""
from __future__ import annotations

from collections.abc import Callable

import bqplot as bq
import ipywidgets as w
import numpy as np
import pandas as pd

from m5ops.dashboard.state import METRICS, metric_lines
from m5ops.dashboard.widgets import css

PALETTE = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000",
           "#ee7733", "#0077bb", "#33bbee", "#ee3377", "#cc3311", "#009988", "#882255", "#999933",
           "#117733", "#332288", "#ddcc77", "#88ccee"]


def color_of(name: str, order: list[str]) -> str:
    """A stable colour per model: its position among every model ever seen."""
    return PALETTE[order.index(name) % len(PALETTE)] if name in order else PALETTE[0]


def _figure(title: str, x_scale, y_scale, marks, y_label: str, cls: str, **layout) -> bq.Figure:
    """A figure with date and value axes."""
    axes = [bq.Axis(scale=x_scale, label="simulated date", grid_lines="none"),
            bq.Axis(scale=y_scale, orientation="vertical", label=y_label, tick_format=".3g")]
    figure = bq.Figure(marks=marks, axes=axes, title=title, animation_duration=0,
                       fig_margin={"top": 40, "bottom": 45, "left": 65, "right": 160},
                       legend_location="top-right", layout=w.Layout(width="100%", height="360px", **layout))
    return css(figure, cls)


class MetricChart:
    """The monitoring chart with its controls: metric, models, show deleted models."""

    def __init__(self, on_metric: Callable[[], None] | None = None):
        self.history = pd.DataFrame(columns=["sim_day", "model", "version", "metric", "value"])
        self.history_metric = "wmape"  # the metric whose history ``history`` holds
        self.on_metric = on_metric  # asks for the newly chosen metric's history (read off the event loop)
        self.live: list[str] = []
        self.deleted: list[str] = []
        self.order: list[str] = []  # every model seen, for stable colours
        self._all_chosen = True  # until the user picks models, every model is shown
        self._syncing = False
        self._drawn = None
        self._history_version = 0
        self.metric = css(w.Dropdown(options=[(label, key) for key, label in METRICS.items()], value="wmape",
                                     description="metric", layout=w.Layout(width="260px")), "m5-metric-choice")
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
        self.metric.observe(lambda _: self.on_metric and self.on_metric(), names="value")
        self.show_deleted.observe(lambda _: self._sync_options(), names="value")
        self.models.observe(self._user_chose, names="value")
        self.widget = css(w.VBox([w.HTML("<h3>Monitoring</h3>"),
                                  w.HBox([self.figure, w.VBox([self.metric, self.models, self.show_deleted, self.note],
                                                              layout=w.Layout(min_width="280px"))])]),
                          "m5-monitoring")

    def update(self, history: pd.DataFrame, live: tuple[str, ...], deleted: tuple[str, ...],
               metric: str = "wmape") -> None:
        """New data (the history of ``metric``): keep the user's choice of models, redraw what changed."""
        if history is not self.history:
            self.history, self._history_version = history, self._history_version + 1
        self.history_metric = metric
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
        key = (metric, tuple(models), self._history_version, tuple(self.deleted))
        if key == self._drawn:
            return
        self._drawn = key
        dates, lines = metric_lines(self.history, metric, models) if len(self.history) else (None, {})
        names = [m for m in models if m in lines]
        with self.lines.hold_sync():
            if names:
                self.lines.x, self.lines.y = _two_dimensional(dates, [lines[m] for m in names])
            else:
                self.lines.x, self.lines.y = np.array([], dtype="datetime64[ns]"), []
            self.lines.labels = [f"{m} (deleted)" if m in self.deleted else m for m in names]
            self.lines.colors = [color_of(m, self.order) for m in names] or PALETTE
            self.lines.marker = "circle" if names and len(dates) <= 30 else None
        self.figure.axes[1].label = METRICS[metric]
        missing = [m for m in models if m not in lines]
        self.note.value = (f"<small>no {METRICS[metric]} yet for: {', '.join(missing)}</small>" if missing else "")


def _two_dimensional(dates: np.ndarray, values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
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
