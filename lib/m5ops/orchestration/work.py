"""Carrying out work: single runs with retries, ticks, queued requests, and ending runs on purpose.

``Work`` is what the runner (and ``m5ops tick --days N``) does, without the when. It makes jobs
(``lanes.Job``: a run, a step of a tick) and hands them to ``submit``: the runner's lanes while
it serves (``in_lanes``), else a queue that the calling thread works through in order (``tick``,
``serve_queue``). A queued request executes under its queued run id; a failing run is retried
as new runs (attempt 2, 3, ...). Another thread may end runs (``end_runs_if_needed``): a run's
process tree is killed and the run recorded interrupted or cancelled, never half-registered.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from m5ops.data.simulate import LOOKBACK_DAYS
from m5ops.data.store import DayStore
from m5ops.errors import ParameterError, RunError
from m5ops.orchestration import executor, jobs
from m5ops.orchestration.executors import Executor, LocalExecutor
from m5ops.orchestration.lanes import Job, Lanes
from m5ops.orchestration.scheduling import RunnerSettings
from m5ops.pipeline.triggers import due_trainings
from m5ops.orchestration.ticks import QueuedTicks, Tick, TickLine
from m5ops.stores.layout import Workspace
from m5ops.stores.registry import Registry
from m5ops.stores.rundb import OPEN
from m5ops.stores.runs import RunStore

log = logging.getLogger("m5ops.runner")
RETRIED = ("failed", "interrupted")  # interrupted without a stop: its Dask worker was lost


@dataclass
class Current:
    """A run executing now, as another thread sees it."""

    run_id: str
    task: str
    model: str | None
    created: str | None  # the model's creation stamp: a change means deleted (and maybe re-created)
    ended: bool = False


class Work:
    """Ticks and requests of one workspace, until ``stop`` is set."""

    def __init__(self, workspace: Workspace, settings: RunnerSettings, stop: threading.Event):
        self.workspace = workspace
        self.settings = settings
        self.stop = stop
        self.runs = RunStore(workspace.runs_path)
        self.registry = Registry(workspace.registry_path)
        self.ticks = TickLine(stop)
        self.currents: dict[str, Current] = {}
        self.executor: Executor = LocalExecutor()  # where runs execute; the runner may start a Dask one
        self._inline: deque[Job] = deque()
        self.submit: Callable[[Job], None] = self._inline.append  # the lanes' submit while the runner serves
        self._tick_trainings: Counter[str] = Counter()  # tick trainings submitted and not ended, by model
        self._lock = threading.Lock()

    # -- where jobs go --------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_lanes(self, workers: int) -> Iterator[Lanes]:
        """Hand every job to ``workers`` lanes, which also serve the queue, until the block ends."""
        lanes = Lanes(workers, self.stop, self.queued_jobs, self.settings.poll_s)
        self.submit = lanes.submit
        try:
            with lanes:
                yield lanes
        finally:
            self.submit = self._inline.append

    def _work_through(self) -> None:
        """Carry out the jobs submitted in this thread, in order, until none is left (dropped once stopping)."""
        while self._inline:
            job = self._inline.popleft()
            if self.stop.is_set():
                job.drop()
            elif job.claim():
                job.carry_out()

    # -- ticks ----------------------------------------------------------------------------------
    def start_tick(self, trigger: str = "schedule") -> Tick:
        """A tick into the tick line: it begins once the ticks before it are done with their steps."""
        tick = Tick(self, trigger)
        self.ticks.add(tick)
        return tick

    def tick(self, trigger: str = "schedule") -> list[dict]:
        """One tick now, in this thread (``m5ops tick``): the steps, then the trainings due; its runs.

        Refused (DataError naming the day) before anything is appended when the store has a gap
        or a recent day cannot be read.
        """
        DayStore(self.workspace.data_dir).require_whole(LOOKBACK_DAYS)
        tick = self.start_tick(trigger)
        self._work_through()
        return tick.runs

    def ticking(self) -> bool:
        """Whether a tick is in its steps (the next scheduled tick waits until they are done)."""
        return self.ticks.busy()

    def trainings_due(self, day: int) -> dict[str, str]:
        """Which models a tick trains on ``day``, and why: the calendar's, or an open alert's trigger."""
        return {due.model: due.reason for due in due_trainings(self.workspace, day)}

    def open_trainings(self) -> set[str]:
        """Models with a training queued, waiting for a lane or running: a tick adds none for them."""
        with self._lock:
            models = {name for name, count in self._tick_trainings.items() if count}
            models |= {current.model for current in self.currents.values() if current.model}
        return models | {run["params"].get("model") for run in self.runs.queued() if run["task"] == "train"}

    def training_job(self, name: str, day: int, trigger: str, on_run: Callable[[dict], dict]) -> Job:
        """A tick's training of ``name`` at the cutoff of ``day``, skipped if no longer due when it starts."""
        def carry_out() -> None:
            try:
                due = self.trainings_due(day)
                if name not in due:
                    log.info("tick skips %s: no longer due (deleted, paused or trained meanwhile)", name)
                    return
                log.info("tick trains %s: %s", name, due[name])
                on_run(self.run("train", {"model": name, "day": day, "reason": due[name]}, trigger))
            finally:
                self._training_over(name)

        with self._lock:
            self._tick_trainings[name] += 1
        return Job("train", f"tick ({trigger}) training of {name}", carry_out, model=name,
                   drop=lambda: self._training_over(name))

    def _training_over(self, name: str) -> None:
        """A tick's training ended, or was dropped before it started."""
        with self._lock:
            self._tick_trainings[name] -= 1

    # -- queued requests ------------------------------------------------------------------------
    def queued_jobs(self) -> list[Job]:
        """The requests queued in runs.db, oldest first, as jobs that claim their run when a lane takes them."""
        return [self._request_job(run) for run in self.runs.queued()]

    def _request_job(self, run: dict) -> Job:
        """A queued request as a job: claimed (queued -> running) as it is taken, then carried out."""
        model = run["params"].get("model") if run["task"] == "train" else None
        return Job(run["task"], f"request {run['id']} {run['task']}{'-' + model if model else ''}",
                   lambda: self._serve_request(run), model=model, claim=lambda: self._claim(run),
                   queued_at=run["created_at"])

    def _claim(self, run: dict) -> bool:
        """Mark a queued request running (False if it was cancelled meanwhile); a training pins its day."""
        try:
            run.update(self.runs.start(run["id"]))
        except RunError:
            return False
        if run["task"] == "train" and run["params"].get("day") is None:
            run["params"]["day"] = DayStore(self.workspace.data_dir).last_day()
        log.info("run %s claimed: %s %s (queued at %s)", run["id"], run["task"], run["params"], run["created_at"])
        return True

    def serve_queue(self, limit: int = 1) -> bool:
        """Claim and carry out up to ``limit`` queued requests in this thread, oldest first; whether any ran."""
        served = 0
        for job in self.queued_jobs()[:limit]:
            if not self.stop.is_set() and job.claim():
                job.carry_out()
                self._work_through()
                served += 1
        return served > 0

    def _serve_request(self, run: dict) -> None:
        """Carry out a claimed request; one that breaks is closed as failed with the reason."""
        try:
            self._carry_out(run)
        except Exception as exc:  # the request fails, recorded with the reason; the runner goes on
            log.exception("run %s could not be carried out", run["id"])
            self.close(run["id"], "failed", f"{type(exc).__name__}: {exc}")

    def _carry_out(self, run: dict) -> None:
        """Execute a claimed request under its own run id, or close it saying why it cannot run."""
        task, params = run["task"], dict(run["params"])
        if task == "tick":
            days = params.get("days", 1)
            if not isinstance(days, int) or isinstance(days, bool) or days < 1:
                self.close(run["id"], "failed", f"tick days must be a positive integer, got {days!r};"
                                                " queue e.g. {'days': 1}")
                return
            QueuedTicks(self, run, days).start()
            return
        status, reason = self._refusal(task, params)
        if status:
            self.close(run["id"], status, reason)
            log.warning("run %s %s: %s", run["id"], status, reason)
            return
        self.run(task, params, run["trigger"], run_id=run["id"])

    def _refusal(self, task: str, params: dict) -> tuple[str | None, str | None]:
        """(status, reason) if a queued request cannot run as asked; trims deleted models from an evaluation."""
        try:
            jobs.check_params(self.workspace, task, params)
        except ParameterError as exc:
            return "failed", f"{exc} (the runner carries out tick, {', '.join(sorted(executor.TASKS))})"
        live = self.registry.models()
        if task == "train" and params["model"] not in live:
            return "cancelled", f"cancelled: there is no model {params['model']!r} (deleted before its training started?)"
        if task == "evaluate" and params.get("models"):
            params["models"] = [name for name in params["models"] if name in live]
            if not params["models"]:
                return "cancelled", "cancelled: no model named in the request exists (deleted meanwhile?)"
        return None, None

    # -- single runs ----------------------------------------------------------------------------
    def run(self, task: str, params: dict, trigger: str, run_id: str | None = None) -> dict:
        """One task as a recorded run, retried after a delay while it fails, up to ``retries`` times."""
        attempt = 1
        while True:
            run = self._attempt(task, params, trigger, run_id, attempt)
            if run["status"] not in RETRIED or attempt > self.settings.retries or self.stop.is_set():
                return run
            if task == "train" and params["model"] not in self.registry.models():
                return run  # deleted: nothing left to retry
            log.info("run %s %s; retrying %s as attempt %d in %g s", run["id"], run["status"], task, attempt + 1,
                     self.settings.retry_delay_s)
            if self.stop.wait(self.settings.retry_delay_s):
                return run
            attempt, run_id = attempt + 1, None

    def _attempt(self, task: str, params: dict, trigger: str, run_id: str | None, attempt: int) -> dict:
        """Execute one attempt, visible in ``currents``; never raises for a run that breaks."""
        if run_id is None:
            run_id = jobs.start_run(self.workspace, task, params, trigger=trigger, attempt=attempt)
        model = params.get("model") if task == "train" else None
        with self._lock:
            self.currents[run_id] = Current(run_id, task, model, self._created(model))
        try:
            run = jobs.run_task(self.workspace, task, params, trigger=trigger, run_id=run_id,
                                settings=self.settings.job_settings(self.executor), attempt=attempt)
        except Exception as exc:  # recorded as the run's failure, with the traceback in the log
            log.exception("run %s broke outside its notebook", run_id)
            run = self.close(run_id, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self.currents.pop(run_id, None)
        if run["status"] == "cancelled" and model and model not in self.registry.models():
            shutil.rmtree(self.workspace.models_dir / model, ignore_errors=True)  # a deleted model's half version
        return run

    def close(self, run_id: str, status: str, error: str | None) -> dict:
        """Finish a run that is still open; returns it as recorded."""
        with contextlib.suppress(RunError):  # already closed (say, cancelled by a delete): that stands
            if self.runs.get(run_id)["status"] in OPEN:
                self.runs.finish(run_id, status, error=error)
        return self.runs.get(run_id)

    def _created(self, model: str | None) -> str | None:
        """The creation stamp of a live model (None if absent or not a model run)."""
        return (self.registry.models().get(model) or {}).get("created") if model else None

    # -- ending runs from another thread --------------------------------------------------------
    def current_run_ids(self) -> list[str]:
        """The ids of the runs executing now, in the order they started."""
        with self._lock:
            return list(self.currents)

    def end_runs_if_needed(self, stop_reason: str | None = None) -> list[str]:
        """End every run that must end now: all of them given ``stop_reason``, else trainings of deleted models.

        Each one's process tree (forked task, kernel) is killed and the run recorded interrupted
        (a stop) or cancelled (a deleted model); a run that succeeded meanwhile stays succeeded.
        Returns the ids of the runs ended by this call.
        """
        with self._lock:
            currents = [current for current in self.currents.values() if not current.ended]
        live = self.registry.models() if not stop_reason and any(c.model for c in currents) else {}
        ended = []
        for current in currents:
            ending = self._ending(current, stop_reason, live)
            if ending and self._end(current, *ending):
                ended.append(current.run_id)
        return ended

    @staticmethod
    def _ending(current: Current, stop_reason: str | None, live: dict) -> tuple[str, str] | None:
        """(status, reason) if ``current`` must end now, else None."""
        if stop_reason:
            return "interrupted", stop_reason
        if current.model and (live.get(current.model) or {}).get("created") != current.created:
            return "cancelled", (f"cancelled: model {current.model!r} was deleted while it trained;"
                                 " no version was registered")
        return None

    def _end(self, current: Current, status: str, reason: str) -> bool:
        """Kill one run's processes, recorded as ``status``; False if its process is not there yet (try again)."""
        killed = jobs.end_run(current.run_id, status, reason, self.executor)
        if not killed:
            return False
        current.ended = True
        log.warning("run %s ending as %s, task processes %s killed: %s", current.run_id, status, killed, reason)
        return True
