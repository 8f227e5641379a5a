"""Recent runs (status, trigger, duration, error) and the executed notebook of any of them.

A notebook is rendered to HTML with nbconvert in a worker thread and shown in a sandboxed
iframe on the page, so its styles cannot leak into the dashboard.
"""
from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as w

from m5ops.dashboard.state import RunRow, format_duration
from m5ops.dashboard.widgets import Actions, button, css
from m5ops.errors import M5opsError

STATUS_COLOURS = {"queued": "#777777", "running": "#0077bb", "succeeded": "#228833", "failed": "#cc3311",
                  "interrupted": "#ee7733", "cancelled": "#999999"}
TABLE_STYLE = ("<style>.m5-runs-table td,.m5-runs-table th{padding:2px 8px;text-align:left;"
               "border-bottom:1px solid #eee;font-size:12px}</style>")


def runs_table(rows: list[RunRow]) -> str:
    """The runs as an HTML table; each row carries ``m5-run-<id>`` and ``m5-status-<status>``."""
    if not rows:
        return "<i>No runs yet.</i>"
    head = "".join(f"<th>{h}</th>" for h in ("run", "task", "model", "trigger", "status", "created (UTC)",
                                              "duration", "error"))
    body = []
    for r in rows:
        model = "-" if not r.model else html.escape(r.model) + (" <i>(deleted)</i>" if r.model_deleted else "")
        error = html.escape((r.error or "")[:80])
        status = f"<b style='color:{STATUS_COLOURS.get(r.status, '#000')}'>{r.status}</b>"
        created = html.escape(r.created[:19].replace("T", " "))
        body.append(f"<tr class='m5-run m5-run-{html.escape(r.id)} m5-status-{r.status}'>"
                    f"<td>{html.escape(r.id)}</td><td>{html.escape(r.task)}</td><td>{model}</td>"
                    f"<td>{r.trigger}</td><td>{status}</td><td>{created}</td>"
                    f"<td>{format_duration(r.duration_s)}</td>"
                    f"<td title='{html.escape(r.error or '', quote=True)}'>{error}</td></tr>")
    return f"{TABLE_STYLE}<table class='m5-runs-table'><tr>{head}</tr>{''.join(body)}</table>"


def render_notebook(path: str | Path) -> str:
    """An executed notebook as a standalone HTML page (nbconvert's lab template)."""
    from nbconvert import HTMLExporter  # a second or more to import: only when asked

    path = Path(path)
    if not path.is_file():
        raise M5opsError(f"the executed notebook {path} is not there (moved or deleted?)")
    body, _ = HTMLExporter(template_name="lab").from_filename(str(path))
    return body


def notebook_frame(page: str, title: str) -> str:
    """An HTML page inside a sandboxed iframe (no scripts), for an ipywidgets.HTML."""
    return (f"<div class='m5-notebook-title'><b>{html.escape(title)}</b></div>"
            f"<iframe class='m5-notebook-frame' sandbox='' style='width:100%;height:600px;border:1px solid #ccc'"
            f" srcdoc=\"{html.escape(page, quote=True)}\"></iframe>")


class RunsPanel:
    """The recent runs and a viewer for their executed notebooks."""

    def __init__(self, actions_runner: Actions):
        self.actions = actions_runner
        self.table = css(w.HTML(runs_table([])), "m5-runs")
        self.choice = css(w.Dropdown(options=[], description="notebook", layout=w.Layout(width="520px")),
                          "m5-notebook-choice")
        self.open = button("Open notebook", "m5-open-notebook")
        self.close = button("Close", "m5-close-notebook")
        self.viewer = css(w.HTML(""), "m5-notebook")
        self.open.on_click(lambda _: self.open_chosen())
        self.close.on_click(lambda _: setattr(self.viewer, "value", ""))
        self._rows: list[RunRow] | None = None
        self.widget = css(w.VBox([w.HTML("<h3>Runs</h3>"), self.table,
                                  w.HBox([self.choice, self.open, self.close]), self.viewer]), "m5-runs-panel")

    def update(self, rows: list[RunRow]) -> None:
        """Redraw the table when the runs changed; offer the runs that have a notebook."""
        if rows == self._rows:
            return
        self._rows = rows
        text = runs_table(rows)
        if self.table.value != text:
            self.table.value = text
        options = [(f"{r.id} {r.label} ({r.status})", r.output) for r in rows if r.output]
        if list(self.choice.options) != options:
            current = self.choice.value
            self.choice.options = options
            if current in [value for _, value in options]:
                self.choice.value = current

    def open_chosen(self) -> None:
        """Render the chosen run's notebook in a worker thread and show it."""
        path = self.choice.value
        if not path:
            self.actions.messages.show("no executed notebook to open yet", "error")
            return
        label, page = self.choice.label, {}
        self.open.disabled = True

        def work() -> str:  # in a worker thread: no widget is touched here
            page["html"] = notebook_frame(render_notebook(path), f"{label}: {path}")
            return f"opened the notebook of run {label.split()[0]}"

        def done(ok: bool, _text: str) -> None:
            self.open.disabled = False
            if ok:
                self.viewer.value = page["html"]
        self.actions.run(f"Render {Path(path).name}", work, done)
