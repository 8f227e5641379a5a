"""The dashboard: header, progress, production, models, create form, monitoring, runs and data, refreshed live.

``show()`` is all the Voila notebook calls. The first snapshot is read before the page is sent,
so the first render is complete; after that an asyncio task on the kernel's event loop reads a
snapshot every ``interval`` seconds (every half second for a while after an action) in a worker
thread and applies it on the loop, where each panel redraws only what changed.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import time
from pathlib import Path

import ipywidgets as w

from m5ops.dashboard.charts import MetricChart, TotalsChart
from m5ops.dashboard.create_form import CreateForm
from m5ops.dashboard.drift_panel import DriftPanel
from m5ops.dashboard.explorer_panel import ExplorerPanel
from m5ops.dashboard.models_panel import ModelsPanel
from m5ops.dashboard.production_panel import ProductionPanel
from m5ops.dashboard.progress_panel import ProgressPanel
from m5ops.dashboard.runs_panel import RunsPanel
from m5ops.dashboard.state import Snapshot, WorkspaceReader
from m5ops.dashboard.widgets import Actions, Messages, css
from m5ops.errors import M5opsError
from m5ops.stores.layout import Workspace, default_home
from m5ops.stores.status import WorkspaceStatus

log = logging.getLogger("m5ops.dashboard")
REFRESH_S = 2.0
FAST_S, FAST_FOR_S = 0.5, 15.0  # after an action, refresh this often for this long
STYLE = """<style>
.m5-header {background:#f4f6f8;border:1px solid #dde;padding:6px 10px;margin-bottom:8px}
.m5-alerts {background:#fff4e5;border:1px solid #f0a64b;padding:4px 10px;margin-bottom:8px}
.m5-alerts ul {margin:2px 0 2px 18px;padding:0}
.m5-header span.m5-item {margin-right:22px}
.m5-runner-down {color:#cc3311} .m5-runner-alive {color:#228833}
.m5-heading {font-weight:bold;border-bottom:1px solid #ccc;margin-bottom:2px}
.m5-model-row:hover {background:#f7f7f7}
.m5-state-paused .m5-col-state {color:#ee7733;font-weight:bold}
.m5-model-cells .m5-col-request {color:#0077bb;font-weight:bold}
.m5-message-error {color:#cc3311} .m5-message-ok {color:#228833} .m5-message-progress {color:#0077bb}
</style>"""


def header_html(h: WorkspaceStatus) -> str:
    """The header line; each item carries a class the browser tests can find."""
    runner = (f"<span class='m5-item m5-runner m5-runner-alive'>runner alive (pid {h.runner_pid})</span>"
              if h.runner_alive else
              f"<span class='m5-item m5-runner m5-runner-down'>runner not running: start it with "
              f"<code>{html.escape(h.runner_command)}</code></span>")
    running = html.escape(", ".join(h.running_labels) or "-")
    queued = html.escape(", ".join(h.queued_labels) or "-")
    scenarios = (f"<br><span class='m5-item m5-scenarios'>demand scenarios: {html.escape(', '.join(h.scenarios))}"
                 "</span>" if h.scenarios else "")
    return (f"<span class='m5-item m5-today'>today <b>{h.today}</b> ({h.date})</span>"
            f"<span class='m5-item m5-data-size'>{h.days} days x {h.series} series = {h.rows:,} rows</span>"
            f"{runner}<br><span class='m5-item m5-running'>running: {running}</span>"
            f"<span class='m5-item m5-queued'>queued: {queued}</span>{scenarios}")


def alerts_html(h: WorkspaceStatus) -> str:
    """The banner of open alerts, empty when there is none."""
    if not h.alerts:
        return ""
    items = "".join(f"<li class='m5-alert m5-alert-{html.escape(a['kind'])}'><b>{html.escape(a['kind'])}</b>"
                    f"{' ' + html.escape(a['model']) if a['model'] else ''}: {html.escape(a['message'])}</li>"
                    for a in h.alerts)
    return f"<b>{len(h.alerts)} open alert(s)</b> (cleared when their condition ends)<ul>{items}</ul>"


def data_facts(h: WorkspaceStatus) -> str:
    """The data panel's line of figures."""
    return (f"<span class='m5-data-rows'>{h.rows:,} rows</span>, <span class='m5-data-series'>{h.series} series</span>,"
            f" {h.days} days through {h.today} ({h.date});"
            f" <span class='m5-held-back'>{h.held_back_left} held-back real days left</span>")


class Dashboard:
    """Every panel of one workspace's dashboard, and the loop that keeps them current."""

    def __init__(self, home: Path | str | None = None, interval: float = REFRESH_S):
        self.workspace = Workspace(home or default_home()).require()
        self.reader = WorkspaceReader(self.workspace.home)
        self.interval = interval
        self.messages = Messages()
        self.actions = Actions(self.messages, after=self.refresh_soon)
        self.header = css(w.HTML(""), "m5-header")
        self.alerts = css(w.HTML(""), "m5-alerts")
        self.alerts.layout.display = "none"
        self.progress = ProgressPanel()
        self.production = ProductionPanel(self.workspace, self.actions)
        self.models = ModelsPanel(self.workspace, self.actions)
        self.form = CreateForm(self.workspace, self.actions, taken=lambda: self.reader.registry_data()["models"])
        self.chart = MetricChart(on_metric=self.refresh_soon)
        self.runs = RunsPanel(self.actions)
        self.data = TotalsChart()
        self.drift = DriftPanel(self.workspace)
        self.explorer = ExplorerPanel(self.workspace, self.reader.store)
        self._task: asyncio.Task | None = None
        self._fast_until = 0.0
        self._wake = asyncio.Event()
        self._refreshing = self._again = False
        self._last_error: str | None = None
        self.snapshot: Snapshot | None = None
        self.apply(self.reader.snapshot(self.chart.metric.value, self.chart.scope.value, self.chart.chosen_level()))
        self.drift.show(self.drift.read())
        title = w.HTML(f"{STYLE}<h2>m5ops <small>{html.escape(str(self.workspace.home))}</small></h2>")
        panels = [title, self.alerts, self.header, self.progress.widget, self.messages.box, self.production.widget,
                  self.models.widget,
                  self.form.widget, self.chart.widget, self.drift.widget, self.explorer.widget, self.runs.widget,
                  self.data.widget]
        self.widget = css(w.VBox(panels), "m5-dashboard")

    def apply(self, snap: Snapshot) -> None:
        """Show a snapshot (on the event loop); each panel skips what did not change."""
        self.snapshot = snap
        text = header_html(snap.header)
        if self.header.value != text:
            self.header.value = text
        banner = alerts_html(snap.header)
        if self.alerts.value != banner:
            self.alerts.value = banner
            self.alerts.layout.display = "block" if banner else "none"
        self.progress.update(snap.running)
        if snap.production is not None:
            self.production.update(snap.production)
        self.models.update(snap.models)
        self.chart.update(snap.history, snap.live, snap.deleted, snap.metric, snap.scope, snap.level)
        self.explorer.update(snap.header.today_day, self.reader.registry_data()["models"])
        self.runs.update(snap.runs)
        self.data.update(snap.totals, data_facts(snap.header))

    async def refresh(self) -> None:
        """Read a snapshot in a worker thread and apply it; a failure shows once as a message."""
        if self._refreshing:
            self._again = True  # e.g. another metric or level was chosen meanwhile: read once more after this one
            return
        self._refreshing, self._again = True, False
        try:
            read = functools.partial(self.reader.snapshot, self.chart.metric.value, self.chart.scope.value,
                                     self.chart.chosen_level())
            snap = await asyncio.get_running_loop().run_in_executor(None, read)
            self.apply(snap)
            self.drift.show(await asyncio.get_running_loop().run_in_executor(None, self.drift.read))
            self._last_error = None
        except M5opsError as exc:
            self._report(f"refresh failed: {exc}")
        except Exception as exc:  # keep the loop alive, and say why the page is stale
            log.exception("dashboard refresh failed")
            self._report(f"refresh failed: {type(exc).__name__}: {exc}")
        finally:
            self._refreshing = False
        if self._again:
            self.refresh_soon()

    def _report(self, text: str) -> None:
        if text != self._last_error:
            self._last_error = text
            self.messages.show(text, "error")

    def refresh_soon(self) -> None:
        """Refresh now, then every FAST_S for a while: an action's effect (a run starting) shows soon."""
        self._fast_until = time.monotonic() + FAST_FOR_S
        if self._task is not None and not self._task.done():
            self._wake.set()  # the loop may be in a slow wait: cut it short, so fast refreshes start now
        else:
            asyncio.ensure_future(self.refresh())

    async def _loop(self) -> None:
        while True:
            fast = time.monotonic() < self._fast_until
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(FAST_S, self.interval) if fast else self.interval)
            self._wake.clear()
            await self.refresh()

    def start(self) -> "Dashboard":
        """Start the live refresh on the running event loop (the kernel's, under Voila)."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())
        return self

    def stop(self) -> None:
        """Stop the live refresh."""
        if self._task is not None:
            self._task.cancel()
            self._task = None


def show(home: Path | str | None = None, interval: float = REFRESH_S) -> w.Widget:
    """The dashboard of workspace ``home`` (default ``$M5OPS_HOME``), refreshing live: display it."""
    return Dashboard(home, interval).start().widget
