"""How far a running task got: reported by the task, stored on its run in ``runs.db``, shown by
the dashboard's progress bar, ``m5ops status`` and a terminal bar while a command waits for it.

A report is a plain callable ``progress(fraction, note)``: ``fraction`` from 0 to 1 of the whole
task, ``note`` what it does now ("boosting round 120 of 400"). Code that does one part of a task
reports through ``part(progress, start, end)``, which maps its own 0..1 onto that slice, so a
model's fit needs to know nothing about the reading before it or the saving after it.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from m5ops.errors import M5opsError
from m5ops.runs import RunStore

log = logging.getLogger("m5ops.progress")
Progress = Callable[[float, str], None]
MIN_INTERVAL_S = 1.0  # runs.db takes one progress write a second at most per run


def no_progress(fraction: float, note: str = "") -> None:
    """A report that goes nowhere (a task run by hand, outside the runner)."""


def part(progress: Progress, start: float, end: float) -> Progress:
    """A report for one part of a task: its 0..1 becomes ``start..end`` of the whole."""
    if progress is no_progress:
        return no_progress
    return lambda fraction, note="": progress(start + (end - start) * min(1.0, max(0.0, fraction)), note)


class RunProgress:
    """Reports of one run, written to its row in ``runs.db`` at most every ``min_interval_s``.

    Reports in between are dropped, except one that reaches 1 (the end of a task always shows) or
    starts a new step (its note's first word changed: "boosting ..." -> "saving ..."), so a step
    that follows a burst of reports never hides behind the burst's last one. A failed write is
    logged once and never raised: progress is shown, not relied on.
    """

    def __init__(self, store, run_id: str, min_interval_s: float = MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.store, self.run_id = store, run_id
        self.min_interval_s, self.clock = min_interval_s, clock
        self._last_write: float | None = None
        self._last_step: str | None = None
        self._warned = False

    def __call__(self, fraction: float, note: str = "") -> None:
        now = self.clock()
        step = note.split(" ", 1)[0]
        if (fraction < 1.0 and step == self._last_step and self._last_write is not None
                and now - self._last_write < self.min_interval_s):
            return
        self._last_write, self._last_step = now, step
        try:
            self.store.set_progress(self.run_id, fraction, note)
        except M5opsError as exc:
            if not self._warned:
                self._warned = True
                log.warning("run %s could not record its progress (%s); it goes on without", self.run_id, exc)


def progress_text(fraction: float | None, note: str | None = "") -> str:
    """``42% boosting round 120 of 400``, or ``starting`` before the task's first report."""
    if fraction is None:
        return "starting"
    return f"{fraction:.0%} {note or ''}".rstrip()


def for_run(runs_path, run_id: str | None) -> Progress:
    """The report of run ``run_id``; ``no_progress`` for a run the runner did not record.

    Task notebooks executed by hand carry the run id ``manual``: no row of ``runs.db`` has it.
    """
    if not run_id or run_id == "manual":
        return no_progress
    return RunProgress(RunStore(runs_path), run_id)


@contextlib.contextmanager
def terminal_bar(store: RunStore, run_id: str, description: str, interval_s: float = 0.5,
                 file=None, disable: bool | None = None) -> Iterator[None]:
    """A tqdm bar following run ``run_id``'s progress in ``runs.db`` while the block runs.

    For commands that run a task in the foreground (``m5ops train NAME``): the task reports from
    its kernel, in another process, so the bar reads what it wrote. Off when the output is not a
    terminal (``disable=None``), as in logs and tests.
    """
    bar = tqdm(total=100, desc=description, file=file, disable=disable,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}")
    stop = threading.Event()

    def show() -> None:
        run = store.get(run_id)
        if run.get("progress") is not None:
            bar.n = round(100 * run["progress"])
            bar.set_postfix_str(run.get("progress_note") or "", refresh=False)
            bar.refresh()

    def follow() -> None:
        while not stop.wait(interval_s):
            with contextlib.suppress(M5opsError):  # a busy runs.db: show it next time
                show()

    follower = threading.Thread(target=follow, name=f"progress-{run_id}", daemon=True)
    follower.start()
    try:
        with logging_redirect_tqdm([logging.getLogger("m5ops")], tqdm_class=tqdm):  # log lines above the bar
            yield
    finally:
        stop.set()
        follower.join()
        with contextlib.suppress(M5opsError):
            show()
        bar.close()
