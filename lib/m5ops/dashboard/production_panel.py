"""The Production panel: who serves and why, each challenger, Promote and Rollback (confirmed), the forecast
of the next 28 days after the recent actuals, the audit log, and each model's versions with their lineage.

Promote and Rollback call ``pipeline.serving`` with actor ``dashboard``: the same locked path as
``m5ops promote`` and ``m5ops rollback``, refusals included. Each asks for a confirmation first,
as Delete does in the models table.
"""
from __future__ import annotations

import html
from functools import partial

import bqplot as bq
import ipywidgets as w
import numpy as np
import pandas as pd

from m5ops.dashboard.charts import EmptyNote, date_axis, set_date_ticks
from m5ops.dashboard.production_state import TOTAL, ForecastPlot, ProductionView, ServingRow, VersionRow
from m5ops.dashboard.widgets import Actions, button, css, html_cell, shared_layout, sync_rows
from m5ops.data.schema import day_label
from m5ops.pipeline import serving
from m5ops.stores.audit import AuditEntry
from m5ops.stores.layout import Workspace

ACTOR = "dashboard"
CELL = "display:inline-block;overflow:hidden;white-space:nowrap;vertical-align:middle;width:{}px"
COLUMNS = [("model", 150), ("version", 70), ("role", 90), ("live WRMSSE", 140), ("windows", 70),
           ("backtest WRMSSE", 135)]
TABLE_STYLE = ("<style>.m5-audit-table td,.m5-audit-table th,.m5-lineage-table td,.m5-lineage-table th"
               "{padding:2px 8px;text-align:left;border-bottom:1px solid #eee;font-size:12px;vertical-align:top}"
               ".m5-status-serving td.m5-status{color:#228833;font-weight:bold}"
               ".m5-status-rejected td.m5-status{color:#cc3311}</style>")


def _score(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.4g}"


def row_cells(row: ServingRow | None) -> str:
    """The text cells of one model's row, or the heading."""
    texts = [title for title, _ in COLUMNS] if row is None else [
        row.model, row.version, row.role, _score(row.live_wrmsse, "- (no window yet)"), str(row.live_windows),
        _score(row.backtest_wrmsse, "- (not evaluated)")]
    return "".join(f"<span class='m5-col-{title.split()[0]}' style='{CELL.format(width)}'>{html.escape(text)}</span>"
                   for (title, width), text in zip(COLUMNS, texts))


def summary_html(view: ProductionView) -> str:
    """Who serves, since when and why; or what is missing."""
    prod, policy = view.production, view.policy
    rule = (f"promotion {policy['promotion']}: a challenger replaces production when its live WRMSSE over the last"
            f" {policy['promotion_windows']} complete issue windows is {policy['promotion_margin']:.0%} better;"
            f" gate {policy['gate_tolerance']:.0%}")
    if prod is None:
        return (f"<div class='m5-production-summary'><b>Nothing serves yet</b>: no model has an evaluated version."
                f"<br><small>{html.escape(rule)}</small></div>")
    since = f" since {day_label(prod['since_day'])} ({html.escape(prod['since_at'][:19].replace('T', ' '))} UTC)" \
        if prod.get("since_day") is not None else ""
    live = prod["live"]
    live_text = (f"{live['wrmsse']:.4g} over {live['windows']} complete issue window(s)" if live["wrmsse"] is not None
                 else "- (no complete issue window yet)")
    return (f"<div class='m5-production-summary'>Serving <b class='m5-serving-name'>{html.escape(prod['model'])}"
            f" {html.escape(prod['version'])}</b>{since}<br>why: <span class='m5-serving-why'>{html.escape(prod['why'])}"
            f"</span><br>live WRMSSE {live_text}; backtest WRMSSE {_score(prod['backtest_wrmsse'], '- (not evaluated)')}"
            f"<br><small>{html.escape(rule)}</small></div>")


def audit_table(entries: tuple[AuditEntry, ...]) -> str:
    """The newest audit entries as an HTML table (``m5-audit-<action>`` on each row)."""
    if not entries:
        return "<i class='m5-audit-empty'>No serving changes yet.</i>"
    head = "".join(f"<th>{h}</th>" for h in ("time (UTC)", "day", "actor", "action", "model", "reason"))
    body = "".join(
        f"<tr class='m5-audit m5-audit-{e.action}'><td>{html.escape(e.at[:19].replace('T', ' '))}</td>"
        f"<td>{day_label(e.sim_day)}</td><td>{e.actor}</td><td>{e.action}</td>"
        f"<td>{html.escape(e.model)} {html.escape(e.version or '')}</td><td>{html.escape(e.reason)}</td></tr>"
        for e in entries)
    return f"{TABLE_STYLE}<table class='m5-audit-table'><tr>{head}</tr>{body}</table>"


def lineage_table(rows: tuple[VersionRow, ...]) -> str:
    """One model's versions (newest first) with status and lineage."""
    if not rows:
        return "<i>No versions yet.</i>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["version", "status", "trained", *(c for c, _ in rows[0].cells)])
    body = "".join(
        f"<tr class='m5-version m5-version-{r.id} m5-status-{r.status}'><td>{r.id}</td><td class='m5-status'>{r.status}"
        f"</td><td>{html.escape(r.trained)}</td>" + "".join(f"<td>{html.escape(text)}</td>" for _, text in r.cells)
        + "</tr>" for r in rows)
    return f"{TABLE_STYLE}<table class='m5-lineage-table'><tr>{head}</tr>{body}</table>"


class ServingRowView:
    """One model's row: its scores, Promote and Rollback, each with a confirmation step."""

    def __init__(self, panel: "ProductionPanel", row: ServingRow):
        self.panel, self.name, self.row = panel, row.model, None
        self.cells = css(html_cell(), "m5-serving-cells")
        self.promote = button("Promote", "m5-promote", "success", width="90px")
        self.rollback = button("Rollback", "m5-rollback", "warning", width="90px")
        self.promote.on_click(lambda _: self.ask("promote"))
        self.rollback.on_click(lambda _: self.ask("rollback"))
        self.confirm = button("", "m5-confirm-serving", "danger")
        self.cancel = button("Cancel", "m5-cancel-serving")
        self.confirm.on_click(lambda _: self._confirmed())
        self.cancel.on_click(lambda _: self.ask(None))
        self.asking: str | None = None
        self.buttons = w.HBox([self.promote, self.rollback], layout=shared_layout())
        self.box = css(w.HBox([self.cells, self.buttons], layout=shared_layout(align_items="center")),
                       "m5-serving-row", f"m5-serving-{row.model}")
        self.show(row)

    def show(self, row: ServingRow) -> None:
        """Bring the row to ``row``'s values."""
        if row == self.row:
            return
        self.row = row
        self.cells.value = row_cells(row)
        for role in ("production", "challenger"):
            (self.box.add_class if role == row.role else self.box.remove_class)(f"m5-role-{role}")
        self.promote.disabled = row.role == "production"
        self.promote.tooltip = "already serving" if row.role == "production" else f"put {row.model} {row.version} in production"
        self.rollback.disabled = row.rollback_to is None
        self.rollback.tooltip = row.rollback_note or f"make {row.rollback_to} {row.model}'s current version again"
        if self.asking:
            self.ask(self.asking)  # the confirmation names the versions as they are now

    def ask(self, kind: str | None) -> None:
        """Show the confirmation step for ``kind`` (promote or rollback), or the buttons again."""
        self.asking = kind
        row = self.row
        if kind == "promote":
            self.confirm.description = f"Yes, promote {row.model} {row.version}"
        elif kind == "rollback":
            self.confirm.description = f"Yes, roll {row.model} back to {row.rollback_to}"
        self.buttons.children = [self.confirm, self.cancel] if kind else [self.promote, self.rollback]

    def _confirmed(self) -> None:
        if self.asking == "promote":
            self.panel.promote(self.name, self.row.version)
        elif self.asking == "rollback":
            self.panel.rollback(self.name, self.row.version, self.row.rollback_to)

    def busy(self, flag: bool) -> None:
        for b in (self.confirm, self.cancel):
            b.disabled = flag

    def close(self) -> None:
        for widget in (self.cells, self.promote, self.rollback, self.confirm, self.cancel, self.buttons, self.box):
            widget.close()


class ForecastChart:
    """The serving model's latest forecast of the next 28 days after the last 56 days of actuals."""

    def __init__(self):
        self.x, self.y = bq.DateScale(), bq.LinearScale()
        self.actual = bq.Lines(x=np.array([], dtype="datetime64[ns]"), y=[], scales={"x": self.x, "y": self.y},
                               colors=["#4477aa"], stroke_width=2, labels=["actual"], display_legend=True)
        self.forecast = bq.Lines(x=np.array([], dtype="datetime64[ns]"), y=[], scales={"x": self.x, "y": self.y},
                                 colors=["#cc3311"], stroke_width=2, line_style="dashed", labels=["forecast"],
                                 display_legend=True)
        axes = [date_axis(self.x),
                bq.Axis(scale=self.y, orientation="vertical", label="units", tick_format=".3g")]
        self.figure = css(bq.Figure(marks=[self.actual, self.forecast], axes=axes, title="Forecast of the next 28 days",
                                    animation_duration=0, legend_location="top-left",
                                    fig_margin={"top": 40, "bottom": 45, "left": 65, "right": 20},
                                    layout=w.Layout(width="100%", height="300px")), "m5-forecast-chart")
        self.empty = EmptyNote(self.figure)
        self.aggregate = css(w.Dropdown(options=[TOTAL], value=TOTAL, description="aggregate",
                                        layout=w.Layout(width="300px")), "m5-forecast-aggregate")
        self.note = css(w.HTML(""), "m5-forecast-note")
        self.plot: ForecastPlot | None = None
        self._drawn = None
        self.aggregate.observe(lambda _: self.draw(), names="value")
        self.widget = w.VBox([w.HBox([self.aggregate, self.note]), self.figure])

    def update(self, plot: ForecastPlot | None) -> None:
        if plot is self.plot:
            return
        self.plot = plot
        labels = list(plot.actual) if plot else [TOTAL]
        if list(self.aggregate.options) != labels:
            keep = self.aggregate.value if self.aggregate.value in labels else TOTAL
            self.aggregate.options = labels
            self.aggregate.value = keep
        self.draw()

    def draw(self) -> None:
        """Redraw the chosen aggregate's two lines."""
        plot, label = self.plot, self.aggregate.value
        if plot is None or (plot, label) == self._drawn:
            return
        self._drawn = (plot, label)
        with self.actual.hold_sync(), self.forecast.hold_sync():
            self.actual.x = pd.to_datetime(list(plot.actual_dates)).to_numpy()
            self.actual.y = np.asarray(plot.actual[label], dtype=float)
            self.forecast.x = pd.to_datetime(list(plot.forecast_dates)).to_numpy()
            self.forecast.y = np.asarray(plot.forecast.get(label, ()), dtype=float)
        set_date_ticks(self.figure.axes[0], self.actual.x, self.forecast.x)
        self.empty.show("" if plot.forecast_dates else "no issued forecast yet: the first issue comes with the next tick",
                        over_data=bool(plot.actual_dates))
        self.note.value = (f"<small>{html.escape(plot.model)} {html.escape(plot.version)}, issued on"
                           f" {day_label(plot.issue_day)}</small>" if plot.forecast_dates else
                           "<small class='m5-no-forecast'>no forecast issued yet: the daily issue stores one"
                           " per model; the actuals are shown alone</small>")


class ProductionPanel:
    """The Production panel at the top of the dashboard."""

    def __init__(self, workspace: Workspace, actions_runner: Actions):
        self.workspace, self.actions = workspace, actions_runner
        self.views: dict[str, ServingRowView] = {}
        self.summary = css(w.HTML(""), "m5-production")
        self.rows = css(w.VBox([]), "m5-serving-rows")
        self.chart = ForecastChart()
        self.audit = css(w.HTML(""), "m5-audit")
        self.lineage_model = css(w.Dropdown(options=[], description="versions of", layout=w.Layout(width="300px")),
                                 "m5-lineage-model")
        self.lineage = css(w.HTML(""), "m5-lineage")
        self.view: ProductionView | None = None
        self.lineage_model.observe(lambda _: self._show_lineage(), names="value")
        self.widget = css(w.VBox([w.HTML("<h3>Production</h3>"), self.summary,
                                  css(w.HTML(row_cells(None)), "m5-heading"), self.rows, self.chart.widget,
                                  w.HTML("<h4>Audit log</h4>"), self.audit, self.lineage_model, self.lineage]),
                          "m5-production-panel")

    def update(self, view: ProductionView) -> None:
        """Show ``view``; each part redraws only when its data changed."""
        if view is self.view:
            return
        self.view = view
        _set(self.summary, summary_html(view))
        sync_rows(self.views, list(view.rows), lambda row: row.model, lambda row: ServingRowView(self, row), self.rows)
        self.chart.update(view.forecast)
        _set(self.audit, audit_table(view.audit))
        names = list(view.versions)
        if list(self.lineage_model.options) != names:
            keep = self.lineage_model.value if self.lineage_model.value in names else \
                (view.production["model"] if view.production else (names[0] if names else None))
            self.lineage_model.options = names
            self.lineage_model.value = keep
        self._show_lineage()

    def _show_lineage(self) -> None:
        name = self.lineage_model.value
        _set(self.lineage, lineage_table(self.view.versions.get(name, ())) if self.view and name else "")

    def _act(self, name: str, label: str, work) -> None:
        """Run a serving change with the row's confirmation disabled meanwhile, then show the buttons again."""
        view = self.views.get(name)
        if view:
            view.busy(True)

        def done(_ok, _text):
            if view:
                view.busy(False)
                view.ask(None)
        self.actions.run(label, work, done)

    def promote(self, name: str, version: str) -> None:
        """Promote (after the confirmation step), through the same locked path as ``m5ops promote``."""
        work = partial(_promote, self.workspace, name, version)
        self._act(name, f"Promote {name} {version}", work)

    def rollback(self, name: str, current: str, to: str | None) -> None:
        """Roll back (after the confirmation step), through the same locked path as ``m5ops rollback``."""
        self._act(name, f"Rollback {name}", partial(_rollback, self.workspace, name, current, to))


def _set(widget: w.HTML, value: str) -> None:
    if widget.value != value:
        widget.value = value


def _promote(workspace: Workspace, name: str, version: str) -> str:
    """Promote the current version the confirmation named (refused if it changed meanwhile)."""
    entry = serving.promote(workspace, name, actor=ACTOR, expected=version)
    return f"promoted {entry.model} {entry.version}: it serves in production"


def _rollback(workspace: Workspace, name: str, current: str, to: str | None) -> str:
    """Roll back to the version the confirmation named (refused if the current one changed meanwhile)."""
    entry = serving.rollback(workspace, name, to, actor=ACTOR, expected=current)
    return f"rolled {entry.model} back from {entry.previous_version} to {entry.version}"
