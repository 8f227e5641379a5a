"""Lanes: the runner's threads that carry out runs side by side, and the rules of what may run beside what.

    with Lanes(workers=2, stop=event, queued=work.queued_jobs) as lanes:   # 1 short lane, 1 training lane
        lanes.submit(job)

With ``workers`` N >= 2 there is one **short lane** (arrivals, evaluations, issues of forecasts,
a tick's steps, requests that are refused) and N-1 **training lanes**; with N = 1 one lane
carries out everything, one run at a time. A lane takes the oldest job it may start now, from
the jobs submitted in this process (a tick's steps and trainings) and the requests queued in
``runs.db`` (claimed only when a lane takes them, so a queued run shows as queued until it
really starts). The rules, all in ``Lanes.may_start``:

- a lane takes only its own kind of job (a training never blocks the short lane);
- never two trainings of one model at once (an evaluation of a model may run while it trains:
  it reads the current version, and the training registers its new one atomically);
- never two arrivals at once;
- a training does not start while an arrival runs: a training pins its day when it starts, and
  that day's features must be complete (an arrival stores the day, then its features).

Each lane is a thread of the runner process; every run is a forked process (``executor``). A
lane thread lives as long as the runner: the kernel sends a forked task its parent-death signal
when the *thread* that forked it exits (``PR_SET_PDEATHSIG``), so a lane never ends mid-run.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from m5ops.errors import M5opsError
from m5ops.stores.clock import utc_now

log = logging.getLogger("m5ops.runner")
TRAINING, SHORT = "training", "short"
ARRIVAL = "simulate_day"
RETRY_AFTER_ERROR_S = 5.0  # runs.db busy for too long, registry unreadable: the lane waits, then retries


def kind_of(task: str) -> str:
    """Which lanes carry out a task: trainings go to the training lanes, everything else to the short one."""
    return TRAINING if task == "train" else SHORT


def _nothing() -> None:
    """The default ``drop``: a job that leaves nothing to close when it never starts."""


@dataclass(eq=False)  # a job is itself: two alike are still two jobs
class Job:
    """One thing a lane carries out: a run, or a step of a tick. Trainings name their model."""

    task: str
    label: str
    carry_out: Callable[[], None]
    model: str | None = None
    claim: Callable[[], bool] = lambda: True  # as a lane takes it (under the lanes' lock): False if gone
    drop: Callable[[], None] = _nothing  # instead of carry_out, if the runner stops before it starts
    queued_at: str = field(default_factory=utc_now)

    @property
    def kind(self) -> str:
        return kind_of(self.task)


@dataclass
class Lane:
    """One thread and the kinds of job it takes; ``job`` is what it carries out now."""

    name: str
    kinds: frozenset[str]
    job: Job | None = None
    thread: threading.Thread | None = None


def make_lanes(workers: int) -> list[Lane]:
    """One short lane and ``workers - 1`` training lanes; a single lane for everything when ``workers`` is 1."""
    if workers == 1:
        return [Lane("all", frozenset({SHORT, TRAINING}))]
    return [Lane("short", frozenset({SHORT})),
            *(Lane(f"training-{i}", frozenset({TRAINING})) for i in range(1, workers))]


class Lanes:
    """The lanes of one runner: threads taking jobs by the rules until ``stop`` is set."""

    def __init__(self, workers: int, stop: threading.Event, queued: Callable[[], list[Job]],
                 poll_s: float = 0.2):
        self.lanes = make_lanes(workers)
        self.stop = stop
        self.queued = queued  # the requests queued in runs.db now, as jobs (read under the lock)
        self.poll_s = poll_s
        self._pending: list[Job] = []
        self._changed = threading.Condition()

    def __enter__(self) -> "Lanes":
        for lane in self.lanes:
            lane.thread = threading.Thread(target=self._serve, args=(lane,), name=f"m5ops-lane-{lane.name}")
            lane.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, job: Job) -> None:
        """Hand a job to the lanes; dropped at once if the runner is stopping."""
        if self.stop.is_set():
            job.drop()
            return
        with self._changed:
            self._pending.append(job)
            self._changed.notify_all()

    def running(self) -> list[Job]:
        """The jobs the lanes carry out now."""
        with self._changed:
            return [lane.job for lane in self.lanes if lane.job is not None]

    def close(self) -> None:
        """Wait for every lane to finish its job (set ``stop`` first), then drop the jobs never started."""
        with self._changed:
            self._changed.notify_all()
        for lane in self.lanes:
            if lane.thread is not None:
                lane.thread.join()
        with self._changed:
            dropped, self._pending = self._pending, []
        for job in dropped:
            job.drop()
        if dropped:
            log.info("the runner stopped: %d job(s) never started: %s", len(dropped), [j.label for j in dropped])

    # -- inside a lane's thread ---------------------------------------------------------------
    def _serve(self, lane: Lane) -> None:
        """Take jobs until ``stop`` is set; a job that breaks is logged and the lane goes on."""
        while not self.stop.is_set():
            try:
                job = self._take(lane)
            except M5opsError as exc:
                log.error("lane %s could not read the queue: %s; it retries in %g s", lane.name, exc,
                          RETRY_AFTER_ERROR_S)
                self.stop.wait(RETRY_AFTER_ERROR_S)
                continue
            if job is None:
                with self._changed:
                    self._changed.wait(self.poll_s)
                continue
            log.info("lane %s starts %s", lane.name, job.label)
            try:
                job.carry_out()
            except Exception:  # logged with its traceback; the job closed its own run if it had one
                log.exception("lane %s: %s broke", lane.name, job.label)
            finally:
                with self._changed:
                    lane.job = None
                    self._changed.notify_all()

    def _take(self, lane: Lane) -> Job | None:
        """The oldest job this lane may start now, claimed and marked as the lane's; None if there is none."""
        with self._changed:
            if self.stop.is_set():
                return None
            candidates = sorted([*self._pending, *self.queued()], key=lambda job: job.queued_at)
            running = [other.job for other in self.lanes if other.job is not None]
            for job in candidates:
                if self.may_start(job, lane, running) and job.claim():
                    if job in self._pending:
                        self._pending.remove(job)
                    lane.job = job
                    return job
        return None

    @staticmethod
    def may_start(job: Job, lane: Lane, running: list[Job]) -> bool:
        """The lanes' rules: its own kind; one training per model; one arrival; no training starts during an arrival."""
        if job.kind not in lane.kinds:
            return False
        if job.kind == TRAINING and any(other.kind == TRAINING and other.model == job.model for other in running):
            return False
        if job.task == ARRIVAL and any(other.task == ARRIVAL for other in running):
            return False
        return not (job.kind == TRAINING and any(other.task == ARRIVAL for other in running))
