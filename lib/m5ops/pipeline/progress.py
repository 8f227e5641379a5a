"""A task's progress reports, stored on its run in ``runs.db`` (the dashboard's bars, ``m5ops
status`` and the terminal bar read them there). The report itself is ``models.progress.Progress``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from m5ops.errors import M5opsError
from m5ops.models.progress import Progress, no_progress
from m5ops.stores.runs import RunStore

log = logging.getLogger("m5ops.pipeline.progress")
MIN_INTERVAL_S = 1.0  # runs.db takes one progress write a second at most per run

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

def for_run(runs_path, run_id: str | None) -> Progress:
    """The report of run ``run_id``; ``no_progress`` for a run the runner did not record.

    Task notebooks executed by hand carry the run id ``manual``: no row of ``runs.db`` has it.
    """
    if not run_id or run_id == "manual":
        return no_progress
    return RunProgress(RunStore(runs_path), run_id)
