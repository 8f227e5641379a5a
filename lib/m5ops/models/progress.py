"""How a long piece of work says how far it got: a plain callable, so that reporters need no import.

A report is ``progress(fraction, note)``: ``fraction`` from 0 to 1 of the whole task, ``note``
what it does now ("boosting round 120 of 400"). Code that does one part of a task reports
through ``part(progress, start, end)``, which maps its own 0..1 onto that slice, so a model's
fit needs to know nothing about the reading before it or the saving after it.
"""
from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Anything called as ``progress(fraction, note)``."""

    def __call__(self, fraction: float, note: str = "") -> None: ...


def no_progress(fraction: float, note: str = "") -> None:
    """A report that goes nowhere (a task run by hand, outside the runner)."""


def part(progress: Progress, start: float, end: float) -> Progress:
    """A report for one part of a task: its 0..1 becomes ``start..end`` of the whole."""
    if progress is no_progress:
        return no_progress
    return lambda fraction, note="": progress(start + (end - start) * min(1.0, max(0.0, fraction)), note)


def progress_text(fraction: float | None, note: str | None = "") -> str:
    """``42% boosting round 120 of 400``, or ``starting`` before the task's first report."""
    if fraction is None:
        return "starting"
    return f"{fraction:.0%} {note or ''}".rstrip()
