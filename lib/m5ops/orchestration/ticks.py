"""A tick in steps: the arrival, the evaluation, the issue of forecasts, then the trainings that are due.

``TICK_STEPS`` is the order of a tick's short steps; a new step is one more line there. Each
step is a job of the short lane, submitted when the step before it ended but keeping the tick's
place in the queue: the steps run back to back, and a request queued meanwhile (an arrival, say)
goes after them, so every step sees the day its tick's arrival brought. Once the steps are done,
the tick submits one training per model that is due (``Work.trainings_due``, the registry's
rule), each pinned to the tick's day, to the training lanes; then the next tick may begin. Two
ticks' steps never interleave (``TickLine``).

A new tick's arrival may run while the previous tick's trainings still train: a training
trains at the cutoff of the day it was pinned to, whatever arrives meanwhile, so simulated time
goes on in demo mode instead of waiting minutes for a full-shape training.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from m5ops.data.simulate import LOOKBACK_DAYS
from m5ops.data.store import DayStore
from m5ops.errors import M5opsError
from m5ops.orchestration import executor
from m5ops.orchestration.lanes import Job
from m5ops.stores.clock import utc_now

if TYPE_CHECKING:
    from m5ops.orchestration.work import Work

log = logging.getLogger("m5ops.runner")


@dataclass(frozen=True)
class Step:
    """A short step of a tick: a run of ``task``, or an in-process ``call`` (a decision on what the runs wrote)."""

    name: str
    task: str | None = None
    call: Callable[["Work"], None] | None = None
    required: bool = False  # unless it succeeds, the rest of the tick is skipped

    def ready(self) -> bool:
        """Whether the step runs: a call always, a task once it is registered with the executor."""
        return self.call is not None or self.task in executor.TASKS


def serving_decision(work: "Work") -> None:
    """The promotion rule on the live scores so far (``pipeline.serving.decide``)."""
    from m5ops.pipeline.serving import decide

    entry = decide(work.workspace, actor="rule")
    if entry is not None:
        log.info("serving decision: %s %s %s: %s", entry.action, entry.model, entry.version, entry.reason)


def alerts_that_trigger(work: "Work") -> None:
    """Today's scores may raise what triggers a training (degradation, drift): record them first."""
    from m5ops.pipeline.alerts import MODEL_ALERTS, refresh_alerts

    refresh_alerts(work.workspace, MODEL_ALERTS)


TICK_STEPS: list[Step] = [
    Step("arrival", task="simulate_day", required=True),  # nothing is evaluated or trained on a stale day
    Step("evaluation", task="evaluate"),
    Step("issue", task="issue_forecast"),  # every current version forecasts the next 28 days
    Step("decision", call=serving_decision),  # promotion by the rule, after the issue, before trainings
    Step("alerts", call=alerts_that_trigger),
]
# ... and then the trainings that are due (Work.trainings_due), each in a training lane.


class Tick:
    """One simulated day: its steps one after another, then its trainings; ``runs`` collects their runs."""

    def __init__(self, work: Work, trigger: str, on_end: Callable[[Tick], None] | None = None):
        self.work, self.trigger, self.on_end = work, trigger, on_end
        self.runs: list[dict] = []
        self.day: int | None = None  # today once its steps are done: the day its trainings are pinned to
        self.cut = False  # the runner stopped before all of it ran
        self.steps_ended = threading.Event()
        self._open = 0  # its jobs submitted and not ended yet
        self._queued_at = ""  # when it began: its steps' place in the lanes' queue
        self._lock = threading.Lock()

    def begin(self) -> None:
        """Submit the first step (the tick line calls this when the previous tick's steps are done)."""
        self._queued_at = utc_now()
        try:
            store = DayStore(self.work.workspace.data_dir)
            store.require_whole(LOOKBACK_DAYS)
            log.info("tick (%s) starts: today is day %d", self.trigger, store.last_day())
            self._submit_step_after(-1)
        except M5opsError as exc:  # refused (a damaged day store, say): one line; the next tick may begin
            log.error("tick (%s) refused: %s", self.trigger, exc)
            self._end_steps()
            if not self._open:
                self._end()
        except Exception:  # the day store unreadable, say: this tick is skipped, the next one may begin
            log.exception("tick (%s) could not begin; it is skipped", self.trigger)
            self._end_steps()
            if not self._open:
                self._end()

    def abandon(self) -> None:
        """End a tick that never began (the runner stopped while it waited in the tick line)."""
        self.cut = True
        self.steps_ended.set()
        self._end()

    # -- steps ----------------------------------------------------------------------------------
    def _submit_step_after(self, index: int) -> None:
        """Submit the next step that is ready, else end the steps and submit the trainings due."""
        for at in range(index + 1, len(TICK_STEPS)):
            step = TICK_STEPS[at]
            if step.ready():
                self._submit(Job(step.task or step.name, f"tick ({self.trigger}) {step.name}",
                                 lambda at=at: self._run_step(at), queued_at=self._queued_at), step=True)
                return
        self._submit_trainings()

    def _run_step(self, at: int) -> None:
        """Carry out one step, then submit the next, else end the steps (a stop, a failed required step, an error)."""
        try:
            goes_on = self._step(TICK_STEPS[at])
        except Exception:  # runs.db busy for too long, say: logged; the next tick must not wait forever
            log.exception("tick (%s): the step %s broke; the rest of this tick is skipped", self.trigger,
                          TICK_STEPS[at].name)
            goes_on = False
        if goes_on:
            self._submit_step_after(at)
        else:
            self._end_steps()

    def _step(self, step: Step) -> bool:
        """One step: a run (or a call); whether the tick goes on after it."""
        if self.work.stop.is_set():
            self.cut = True
            return False
        if step.call is not None:
            try:
                step.call(self.work)
            except Exception:  # a decision that breaks is logged with its traceback; the tick goes on
                log.exception("tick (%s): the step %s broke; the tick goes on", self.trigger, step.name)
            return True
        run = self._record(self.work.run(step.task, {}, self.trigger))
        if step.required and run["status"] != "succeeded":
            log.warning("run %s: the %s %s, so the rest of this tick is skipped", run["id"], step.name, run["status"])
            return False
        return True

    def _end_steps(self) -> None:
        """The tick's steps are over: the next tick in the line may begin."""
        self.steps_ended.set()
        self.work.ticks.steps_ended(self)

    # -- trainings ------------------------------------------------------------------------------
    def _submit_trainings(self) -> None:
        """One training per model due today and not already training, pinned to today; then the steps end."""
        try:
            self.day = DayStore(self.work.workspace.data_dir).last_day()
            busy = self.work.open_trainings()
            for name in self.work.trainings_due(self.day):
                if name in busy:
                    log.info("tick (%s) leaves %s: a training of it is already queued or running", self.trigger, name)
                    continue
                self._submit(self.work.training_job(name, self.day, self.trigger, on_run=self._record))
        finally:  # even if the registry could not be read: the next tick must not wait forever
            self._end_steps()

    # -- bookkeeping ----------------------------------------------------------------------------
    def _submit(self, job: Job, step: bool = False) -> None:
        """Hand ``job`` to the lanes, counted until it ends or is dropped (a dropped step ends the steps)."""
        carry_out, drop = job.carry_out, job.drop

        def carried_out() -> None:
            try:
                carry_out()
            finally:
                self._job_ended()

        def dropped() -> None:
            try:
                drop()
            finally:
                self.cut = True
                if step:
                    self._end_steps()
                self._job_ended()
        with self._lock:
            self._open += 1
        job.carry_out, job.drop = carried_out, dropped
        self.work.submit(job)

    def _record(self, run: dict) -> dict:
        """Keep a finished run of this tick."""
        with self._lock:
            self.runs.append(run)
        return run

    def _job_ended(self) -> None:
        """Count a job down; the last one ends the tick."""
        with self._lock:
            self._open -= 1
            last = self._open == 0 and self.steps_ended.is_set()
        if last:
            self._end()

    def _end(self) -> None:
        """Say how the tick went, and tell whoever waits for it."""
        failed = [r["id"] for r in self.runs if r["status"] != "succeeded"]
        log.info("tick (%s) %s: day %s, %d run(s), not succeeded: %s", self.trigger,
                 "cut short by the stop" if self.cut else "done", "-" if self.day is None else self.day,
                 len(self.runs), failed or "none")
        if self.on_end is not None:
            self.on_end(self)


class TickLine:
    """Ticks one after another: a tick begins once the previous tick's steps are done."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self._ticks: deque[Tick] = deque()  # the first one is in its steps, the others wait
        self._lock = threading.Lock()

    def add(self, tick: Tick) -> None:
        """Begin ``tick`` now if no other tick is in its steps, else once the ones before it are done."""
        with self._lock:
            self._ticks.append(tick)
            first = len(self._ticks) == 1
        if first:
            tick.begin()

    def busy(self) -> bool:
        """Whether a tick is in its steps (or waits to begin)."""
        with self._lock:
            return bool(self._ticks)

    def steps_ended(self, tick: Tick) -> None:
        """``tick``'s steps are done: begin the next tick, or abandon them all if the runner stops."""
        with self._lock:
            if not (self._ticks and self._ticks[0] is tick):
                return  # told already
            self._ticks.popleft()
            waiting = list(self._ticks) if self.stop.is_set() else []
            if waiting:
                self._ticks.clear()
            following = self._ticks[0] if self._ticks else None
        for abandoned in waiting:
            abandoned.abandon()
        if following is not None:
            following.begin()


class QueuedTicks:
    """A queued ``tick`` request (``{"days": N}``): N ticks as sub-runs; the meta-run closes when all have ended."""

    def __init__(self, work: Work, run: dict, days: int):
        self.work, self.run_id, self.days = work, run["id"], days
        self.trigger = "backfill" if days > 1 else "manual"
        self._ended: list[Tick] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Put the N ticks in the tick line, one after another."""
        for _ in range(self.days):
            self.work.ticks.add(Tick(self.work, self.trigger, on_end=self._tick_ended))

    def _tick_ended(self, tick: Tick) -> None:
        """Count a tick; after the last one, close the meta-run saying how its sub-runs went."""
        with self._lock:
            self._ended.append(tick)
            if len(self._ended) < self.days:
                return
        sub = [run for ended in self._ended for run in ended.runs]
        complete = sum(not ended.cut for ended in self._ended)
        bad = [r["id"] for r in sub if r["status"] != "succeeded"]
        if complete < self.days:
            status, error = "interrupted", f"interrupted: the runner stopped after {complete} of {self.days} tick(s)"
        elif bad:
            status, error = "failed", f"{len(bad)} of {len(sub)} sub-run(s) did not succeed: {', '.join(bad)}"
        else:
            status, error = "succeeded", None
        self.work.close(self.run_id, status, error)
        log.info("run %s %s: %d tick(s), %d sub-run(s)", self.run_id, status, complete, len(sub))
