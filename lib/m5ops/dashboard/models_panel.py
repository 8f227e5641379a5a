"""The models table: one row per model with Train now, Pause or Resume, and Delete (confirmed)."""
from __future__ import annotations

import html
from functools import partial

import ipywidgets as w

from m5ops.dashboard import actions
from m5ops.dashboard.state import METRICS, ModelRow, format_value
from m5ops.dashboard.widgets import Actions, button, css, html_cell, shared_layout, sync_rows
from m5ops.stores.layout import Workspace

# the note (series a WRMSSE left out, why a score is n/a) sits right after the WRMSSE column
COLUMNS = [("model", "name", 150), ("kind", "kind", 120), ("state", "state", 64), ("versions", "versions", 72),
           ("last trained", "trained", 92), *[(label.split()[0], key, 72) for key, label in METRICS.items()],
           ("note", "note", 260), ("request", "request", 80)]
PENDING = {"queued": "queued", "running": "training"}
CELL = "display:inline-block;overflow:hidden;white-space:nowrap;vertical-align:middle;width:{}px"


def row_cells(row: ModelRow | None) -> str:
    """The text cells of a row (or the heading when ``row`` is None) as one HTML string.

    One HTML widget per row instead of one per cell keeps a 20-model table light to render.
    """
    if row is None:
        texts = [title for title, _, _ in COLUMNS]
    else:
        texts = [row.name, row.kind, row.state, f"{row.versions} ({row.current})" if row.current else "0",
                 row.last_trained or "-", *[format_value(v, key in row.undefined) for key, v in row.metrics],
                 row.note, PENDING.get(row.pending, "")]
    return "".join(_cell(key, width, text) for (_, key, width), text in zip(COLUMNS, texts))


def _cell(key: str, width: int, text: str) -> str:
    """One cell; the note also as a tooltip, in case its column cuts it short."""
    escaped = html.escape(text)
    title = f" title='{escaped}'" if key == "note" and text else ""
    return f"<span class='m5-col-{key}' style='{CELL.format(width)}'{title}>{escaped}</span>"


class ModelRowView:
    """The widgets of one model's row, updated in place."""

    def __init__(self, panel: "ModelsPanel", row: ModelRow):
        self.panel, self.name = panel, row.name
        self.cells = css(html_cell(), "m5-model-cells")
        self.train = button("Train now", "m5-train", width="90px", tooltip=f"queue a training of {row.name} now")
        self.toggle = button("Pause", "m5-toggle", width="80px")
        self.delete = button("Delete", "m5-delete", "danger", width="70px", tooltip=f"delete {row.name}")
        self.confirm: w.Button | None = None  # the confirmation step's buttons, made when first asked
        self.cancel: w.Button | None = None
        self.train.on_click(lambda _: panel.train(self.name))
        self.toggle.on_click(lambda _: panel.toggle(self.name, self.toggle.description == "Resume"))
        self.delete.on_click(lambda _: self.ask_delete(True))
        self.buttons = w.HBox([self.train, self.toggle, self.delete], layout=shared_layout())
        self.box = css(w.HBox([self.cells, self.buttons], layout=shared_layout(align_items="center")),
                       "m5-model-row", f"m5-model-{row.name}")
        self.row: ModelRow | None = None
        self.show(row)

    def show(self, row: ModelRow) -> None:
        """Bring the widgets to ``row``'s values (nothing is sent when nothing changed)."""
        if row == self.row:
            return
        self.row = row
        self.cells.value = row_cells(row)
        self._set_state_class(row.state)
        self.toggle.description = "Pause" if row.active else "Resume"
        self.toggle.tooltip = f"{'pause' if row.active else 'resume'} the weekly retraining of {row.name}"
        self.train.disabled = row.pending is not None

    def _set_state_class(self, state: str) -> None:
        """``m5-state-active`` or ``m5-state-paused`` on the row."""
        for name in ("m5-state-active", "m5-state-paused"):
            if name in self.box._dom_classes and name != f"m5-state-{state}":
                self.box.remove_class(name)
        if f"m5-state-{state}" not in self.box._dom_classes:
            self.box.add_class(f"m5-state-{state}")

    def ask_delete(self, asking: bool) -> None:
        """Swap the row's buttons for the confirmation step, or back."""
        if asking and self.confirm is None:
            self.confirm = button(f"Yes, delete {self.name}", "m5-confirm-delete", "danger")
            self.cancel = button("Cancel", "m5-cancel-delete")
            self.confirm.on_click(lambda _: self.panel.delete(self.name))
            self.cancel.on_click(lambda _: self.ask_delete(False))
        self.buttons.children = [self.confirm, self.cancel] if asking else [self.train, self.toggle, self.delete]

    def close(self) -> None:
        """Close every widget of the row."""
        for widget in (self.cells, self.train, self.toggle, self.delete, self.confirm, self.cancel, self.buttons,
                       self.box):
            if widget is not None:
                widget.close()

    def busy(self, flag: bool) -> None:
        """Disable the row's buttons while one of its actions is in flight."""
        for b in (self.toggle, self.delete, self.confirm, self.cancel):
            if b is not None:
                b.disabled = flag


class ModelsPanel:
    """Every live model, the per-model actions, and Evaluate all now / Run a day now."""

    def __init__(self, workspace: Workspace, actions_runner: Actions):
        self.workspace, self.actions = workspace, actions_runner
        self.views: dict[str, ModelRowView] = {}
        heading = css(w.HTML(row_cells(None)), "m5-heading")
        self.rows = css(w.VBox([]), "m5-model-rows")
        self.empty = css(w.HTML("<i>No models yet: create one below.</i>"), "m5-no-models")
        self.evaluate = button("Evaluate all now", "m5-evaluate-all", "info")
        self.run_day = button("Run a day now", "m5-run-day", "info")
        self.evaluate.on_click(lambda _: self.actions.run("Evaluate all", partial(actions.evaluate_all, workspace)))
        self.run_day.on_click(lambda _: self.actions.run("Run a day", partial(actions.run_day, workspace)))
        self.widget = css(w.VBox([w.HTML("<h3>Models</h3>"), heading, self.rows, self.empty,
                                  w.HBox([self.evaluate, self.run_day])]), "m5-models")

    def update(self, rows: list[ModelRow]) -> None:
        """Add, change and drop rows so that the table shows ``rows``, in registry order."""
        sync_rows(self.views, rows, lambda row: row.name, lambda row: ModelRowView(self, row), self.rows)
        self.empty.layout.display = "none" if rows else None

    def _act(self, name: str, label: str, work, undo_confirm: bool = False) -> None:
        """Run a per-model action with its row's buttons disabled meanwhile."""
        view = self.views.get(name)
        if view:
            view.busy(True)

        def done(_ok, _text):
            if view:
                view.busy(False)
                if undo_confirm:
                    view.ask_delete(False)
        self.actions.run(label, work, done)

    def train(self, name: str) -> None:
        """Queue a training; the button stays disabled while the run is open (the refresh sees to it)."""
        view = self.views.get(name)
        if view:
            view.train.disabled = True

        def done(ok: bool, _text: str) -> None:
            if view and not ok:
                view.train.disabled = False
        self.actions.run(f"Train {name}", partial(actions.train_now, self.workspace, name), done)

    def toggle(self, name: str, resume: bool) -> None:
        """Pause or resume a model through the registry's locked path."""
        work = partial(actions.resume if resume else actions.pause, self.workspace, name)
        self._act(name, f"{'Resume' if resume else 'Pause'} {name}", work)

    def delete(self, name: str) -> None:
        """Delete a model (after the row's confirmation step)."""
        self._act(name, f"Delete {name}", partial(actions.delete, self.workspace, name), undo_confirm=True)
