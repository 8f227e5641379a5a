"""Small widget helpers: CSS classes, labelled cells, outcome messages, actions off the event loop.

Every widget the browser tests look for carries an ``m5-...`` class. Actions run their work in
a worker thread, but every widget change happens on the kernel's event loop (widget updates
from a thread are unreliable under Voila), so the page never freezes and never misses one.
"""
from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle

from m5ops.errors import M5opsError

log = logging.getLogger("m5ops.dashboard")
MAX_MESSAGES = 6


def css(widget: w.Widget, *classes: str) -> w.Widget:
    """Add CSS classes to a widget and return it."""
    for name in classes:
        widget.add_class(name)
    return widget


_LAYOUTS: dict[tuple, w.Layout] = {}
_BUTTON_STYLE: list[w.ButtonStyle] = []
_HTML_STYLE: list = []


def shared_layout(**settings: str) -> w.Layout:
    """One Layout per distinct setting, shared by every widget that uses it (never change it in place).

    Each widget otherwise brings its own Layout and style models to the browser; sharing them
    halves what a 20-model page has to create.
    """
    key = tuple(sorted(settings.items()))
    if key not in _LAYOUTS:
        _LAYOUTS[key] = w.Layout(**settings)
    return _LAYOUTS[key]


def _shared(cache: list, make):
    if not cache:
        cache.append(make())
    return cache[0]


def html_cell(value: str = "", **layout: str) -> w.HTML:
    """An HTML widget with a shared style and layout."""
    return w.HTML(value, style=_shared(_HTML_STYLE, HTMLStyle), layout=shared_layout(**layout))


def button(description: str, cls: str, style: str = "", width: str = "auto", tooltip: str = "") -> w.Button:
    """A button with an ``m5-`` class, a shared style and a shared layout."""
    return css(w.Button(description=description, button_style=style, tooltip=tooltip or description,
                        style=_shared(_BUTTON_STYLE, w.ButtonStyle), layout=shared_layout(width=width)), cls)


def sync_rows(views: dict, rows: list, key: Callable, make: Callable, box: w.Box) -> None:
    """Make ``box`` show one view per row, in order: update the kept, make the new, close the gone.

    ``views`` (key -> view, changed in place) holds views with ``show(row)``, ``box`` and
    ``close()``; a kept view redraws only what changed in its row.
    """
    keys = [key(row) for row in rows]
    gone = [views.pop(k) for k in set(views) - set(keys)]
    for k, row in zip(keys, rows):
        if k in views:
            views[k].show(row)
        else:
            views[k] = make(row)
    boxes = [views[k].box for k in keys]
    if list(box.children) != boxes:
        box.children = boxes
    for view in gone:  # off the page now: free their widgets in the kernel and the browser
        view.close()


class Messages:
    """The outcome of every action, newest first: ok, error or in progress."""

    def __init__(self):
        self.box = css(w.VBox([]), "m5-messages")

    def show(self, text: str, kind: str = "ok") -> w.HTML:
        """Add a message (kind: ok, error, progress) and return its widget."""
        icon = {"ok": "&#10003;", "error": "&#10007;", "progress": "&#8987;"}[kind]
        stamp = time.strftime("%H:%M:%S")
        item = css(w.HTML(f"<span>{stamp} {icon} {html.escape(text, quote=False)}</span>"), "m5-message", f"m5-message-{kind}")
        self.box.children = (item, *self.box.children[:MAX_MESSAGES - 1])
        return item

    def replace(self, item: w.HTML, text: str, kind: str) -> None:
        """Turn a progress message into its outcome (or add the outcome if it scrolled away)."""
        if item in self.box.children:
            self.box.children = tuple(child for child in self.box.children if child is not item)
        self.show(text, kind)


class Actions:
    """Runs an action's work in a thread and shows its progress and outcome as messages."""

    def __init__(self, messages: Messages, after: Callable[[], None] | None = None):
        self.messages = messages
        self.after = after  # e.g. refresh the dashboard once an action is done
        self.pending: set[asyncio.Task] = set()

    def run(self, label: str, work: Callable[[], str], done: Callable[[bool, str], None] | None = None) -> None:
        """Start ``work`` (returns the success message); then ``done(ok, message)`` on the event loop."""
        progress = self.messages.show(f"{label}...", "progress")
        task = asyncio.ensure_future(self._run(label, work, progress, done))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _run(self, label, work, progress, done) -> None:
        """Await the work in the default executor; report on the event loop."""
        try:
            ok, text = True, await asyncio.get_running_loop().run_in_executor(None, work)
        except M5opsError as exc:
            ok, text = False, f"{label} refused: {exc}"
        except Exception as exc:  # shown on the page and logged: an action must never die silently
            log.exception("dashboard action %r failed", label)
            ok, text = False, f"{label} failed: {type(exc).__name__}: {exc}"
        self.messages.replace(progress, text, "ok" if ok else "error")
        if done is not None:
            done(ok, text)
        if self.after is not None:
            self.after()
