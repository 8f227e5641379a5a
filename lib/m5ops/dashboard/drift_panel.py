"""The drift panel: a model's latest drift table (columns by PSI, in their bands) and the target's PSI over time.

``read`` runs off the event loop (a worker thread) and returns the drift report only when the
drift table changed since the last read (a cheap fingerprint), else None; ``show`` applies it on
the loop. The chart draws one line per model of its target's PSI, with the band limits 0.1 and
0.25 as dashed lines; the table shows the chosen model's columns, the target first, then by PSI.
"""
from __future__ import annotations

import html

import bqplot as bq
import ipywidgets as w
import numpy as np
import pandas as pd

from m5ops.dashboard.charts import EmptyNote, set_date_ticks, two_dimensional
from m5ops.dashboard.widgets import css
from m5ops.data.schema import day_date, day_label
from m5ops.evaluation.drift import SIGNIFICANT, STABLE
from m5ops.pipeline.drift import drift_report
from m5ops.stores.drift import DriftStore
from m5ops.stores.layout import Workspace

BAND_COLOURS = {"stable": "#228833", "moderate": "#ee7733", "significant": "#cc3311", "-": "#777777"}
LINE_COLOURS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000"]
NO_DRIFT = "no drift recorded yet: each tick's evaluation records it, the first with the next tick"
TABLE_STYLE = ("<style>.m5-drift-table td,.m5-drift-table th{padding:2px 8px;text-align:left;"
               "border-bottom:1px solid #eee;font-size:12px}</style>")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def drift_table(name: str, entry: dict) -> str:
    """One model's drift as an HTML table; each row carries ``m5-drift-row`` and ``m5-band-<band>``."""
    (r0, r1), (c0, c1) = entry["reference"], entry["current"]
    caption = (f"<div class='m5-drift-caption'><b>{html.escape(name)} {html.escape(entry['version'])}</b> on"
               f" {day_label(entry['sim_day'])}: training window {day_label(r0)}..{day_label(r1)} against"
               f" {day_label(c0)}..{day_label(c1)}. PSI &lt; {STABLE:g} stable, &lt; {SIGNIFICANT:g} moderate,"
               " else significant.</div>")
    head = "".join(f"<th>{h}</th>" for h in ("column", "kind", "PSI", "band", "Wasserstein (normed)",
                                              "Jensen-Shannon", "rows (ref / now)"))
    body = []
    for c in entry["columns"]:
        label = html.escape(c["column"]) + (" <i>(target)</i>" if c["target"] else "")
        body.append(f"<tr class='m5-drift-row m5-band-{c['band']}' data-column='{html.escape(c['column'])}'>"
                    f"<td>{label}</td><td>{c['kind']}</td><td class='m5-drift-psi'>{_num(c['psi'])}</td>"
                    f"<td style='color:{BAND_COLOURS[c['band']]}'><b>{c['band']}</b></td>"
                    f"<td>{_num(c['wasserstein'])}</td><td>{_num(c['jensen_shannon'])}</td>"
                    f"<td>{c['n_reference']:,} / {c['n_current']:,}</td></tr>")
    return f"{TABLE_STYLE}{caption}<table class='m5-drift-table'><tr>{head}</tr>{''.join(body)}</table>"


def psi_lines(report: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(dates, one row of target PSI per model with NaN gaps, model names) over the union of days."""
    rows = [(name, h["sim_day"], h["psi"]) for name, entry in report.items() for h in entry["target_history"]]
    if not rows:
        return np.array([], dtype="datetime64[ns]"), np.empty((0, 0)), []
    frame = pd.DataFrame(rows, columns=["model", "sim_day", "psi"]).astype({"psi": "float64"})
    table = frame.pivot_table(index="model", columns="sim_day", values="psi", aggfunc="last", dropna=False)
    return day_date(table.columns.to_numpy()).to_numpy(), table.to_numpy(), [str(m) for m in table.index]


class DriftPanel:
    """The drift section: model choice, its drift table, and every model's target PSI over time."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._fingerprint = None
        self.report: dict = {}
        self.model = css(w.Dropdown(options=[], description="model", layout=w.Layout(width="260px")),
                         "m5-drift-model")
        self.table = css(w.HTML("<i>No drift recorded yet: each evaluation records it.</i>"), "m5-drift-table-box")
        self.x, self.y = bq.DateScale(), bq.LinearScale(min=0.0)
        self.lines = bq.Lines(x=np.array([], dtype="datetime64[ns]"), y=[], scales={"x": self.x, "y": self.y},
                              display_legend=True, labels=[], colors=LINE_COLOURS, stroke_width=2, marker="circle",
                              marker_size=16)
        self.limits = bq.Lines(x=np.array([], dtype="datetime64[ns]"), y=[], scales={"x": self.x, "y": self.y},
                               colors=[BAND_COLOURS["moderate"], BAND_COLOURS["significant"]], line_style="dashed",
                               stroke_width=1)
        axes = [bq.Axis(scale=self.x, label="simulated date", grid_lines="none"),
                bq.Axis(scale=self.y, orientation="vertical", label="target PSI", tick_format=".2f")]
        self.figure = css(bq.Figure(marks=[self.limits, self.lines], axes=axes, title="Target PSI over time",
                                    animation_duration=0, legend_location="top-right",
                                    fig_margin={"top": 40, "bottom": 45, "left": 65, "right": 160},
                                    layout=w.Layout(width="100%", height="300px")), "m5-drift-chart")
        self.empty = EmptyNote(self.figure)
        self.empty.show(NO_DRIFT)
        self.model.observe(lambda _: self._draw_table(), names="value")
        self.widget = css(w.VBox([w.HTML("<div class='m5-heading'>Drift against each version's training window</div>"),
                                  self.model, self.table, self.figure]), "m5-drift-panel")

    def read(self) -> dict | None:
        """The drift report if the drift table changed since the last read, else None (off the event loop)."""
        registry = self.workspace.registry_path
        changed = registry.stat().st_mtime_ns if registry.exists() else None  # a deleted model leaves the report
        fingerprint = (DriftStore(self.workspace.runs_path).fingerprint(), changed)
        if fingerprint == self._fingerprint:
            return None
        report = drift_report(self.workspace)
        self._fingerprint = fingerprint
        return report

    def show(self, report: dict | None) -> None:
        """Apply a report from ``read`` (None: nothing changed)."""
        if report is None:
            return
        self.report = report
        names = sorted(report)
        if list(self.model.options) != names:
            chosen = self.model.value if self.model.value in names else (names[0] if names else None)
            self.model.options = names
            self.model.value = chosen
        self._draw_table()
        self._draw_chart()

    def _draw_table(self) -> None:
        entry = self.report.get(self.model.value)
        if entry is not None:
            self.table.value = drift_table(self.model.value, entry)

    def _draw_chart(self) -> None:
        dates, values, names = psi_lines(self.report)
        if len(dates):  # one row per model even on a single day (bqplot squeezes (1, 1) to a scalar)
            dates, values = two_dimensional(dates, list(values))
        with self.lines.hold_sync():
            self.lines.x, self.lines.y, self.lines.labels = dates, values, names
        set_date_ticks(self.figure.axes[0], dates)
        self.empty.show("" if len(dates) else NO_DRIFT)
        if len(dates):
            ends = np.array([dates[0], dates[-1]])
            with self.limits.hold_sync():
                self.limits.x, self.limits.y = ends, np.array([[STABLE, STABLE], [SIGNIFICANT, SIGNIFICANT]])
