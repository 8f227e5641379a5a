"""A progress bar per running run: how far its task got, what it does now, and for how long.

The runner executes one run at a time, so there is usually one bar, and none when it is idle
(the panel then takes no room). A bar's widgets are made when its run starts and closed when it
ends, so an idle dashboard carries none of them.
"""
from __future__ import annotations

import html

import ipywidgets as w

from m5ops.dashboard.state import RunningRow, format_duration
from m5ops.dashboard.widgets import css, html_cell, shared_layout, sync_rows


def bar_text(row: RunningRow) -> str:
    """``42% boosting round 120 of 400, for 1 min 03 s`` (or ``starting`` before the first report)."""
    done = "starting" if row.fraction is None else f"{row.fraction:.0%}"
    note = f" {html.escape(row.note)}" if row.note else ""
    return (f"<span class='m5-progress-percent'>{done}</span>{note},"
            f" for {format_duration(row.elapsed_s)}")


class ProgressBar:
    """The widgets of one running run's bar, updated in place."""

    def __init__(self, row: RunningRow):
        self.label = html_cell(f"<b>{html.escape(row.label)}</b>", width="220px")
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info", layout=shared_layout(width="320px"))
        self.text = css(html_cell(), "m5-progress-note")
        self.box = css(w.HBox([self.label, self.bar, self.text], layout=shared_layout(align_items="center")),
                       "m5-progress-row", f"m5-progress-{row.id}")
        self.row: RunningRow | None = None
        self.show(row)

    def show(self, row: RunningRow) -> None:
        if row == self.row:
            return
        self.row = row
        self.bar.value = row.fraction or 0.0
        self.text.value = bar_text(row)

    def close(self) -> None:
        for widget in (self.label, self.bar, self.text, self.box):
            widget.close()


class ProgressPanel:
    """The bars of every running run."""

    def __init__(self):
        self.bars: dict[str, ProgressBar] = {}
        self.widget = css(w.VBox([]), "m5-progress")

    def update(self, rows: tuple[RunningRow, ...]) -> None:
        """Bars for exactly the runs in ``rows``."""
        sync_rows(self.bars, list(rows), lambda row: row.id, ProgressBar, self.widget)
