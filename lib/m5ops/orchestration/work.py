"""Carrying out work one run at a time: ticks, queued requests, retries, and ending a run on purpose.

``Work`` is what the runner (and ``m5ops tick --days N``) does, without the when: a tick is
the arrival, the evaluation of all models, then one training per active model that is due; a
queued request executes under its queued run id; a failing run is retried as new runs
(attempt 2, 3, ...). Another thread may end the current run (``end_current``): its process
tree is killed and the run recorded interrupted or cancelled, never half-registered.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from dataclasses import dataclass

from m5ops.data.simulate import LOOKBACK_DAYS
from m5ops.data.store import DayStore
from m5ops.errors import ParameterError
from m5ops.orchestration import executor, jobs
from m5ops.orchestration.lock import kill_children
from m5ops.orchestration.scheduling import RunnerSettings
from m5ops.pipeline.alerts import MODEL_ALERTS, refresh_alerts
from m5ops.pipeline.triggers import due_trainings
from m5ops.stores.registry import Registry
from m5ops.errors import RunError
from m5ops.stores.rundb import OPEN
from m5ops.stores.runs import RunStore
from m5ops.stores.layout import Workspace

log = logging.getLogger("m5ops.runner")


@dataclass
class Current:
    """The run executing now, as another thread sees it."""

    run_id: str
    task: str
    model: str | None
    created: str | None  # the model's creation stamp: a change means deleted (and maybe re-created)
    ended: bool = False


class Work:
    """Ticks and requests of one workspace, executed one run at a time, until ``stop`` is set."""

    def __init__(self, workspace: Workspace, settings: RunnerSettings, stop: threading.Event,
                 serving: bool = True):
        self.workspace = workspace
        self.settings = settings
        self.stop = stop
        self.serving = serving  # serve queued requests between the steps of a tick
        self.runs = RunStore(workspace.runs_path)
        self.registry = Registry(workspace.registry_path)
        self.current: Current | None = None
        self._current_lock = threading.Lock()

    # -- ticks --------------------------------------------------------------------------------
    def tick(self, trigger: str = "schedule") -> list[dict]:
        """One simulated day: the arrival, the evaluation of all models, the trainings that are due.

        Refused (DataError naming the day) before anything is appended when the store has a
        gap or a recent day cannot be read.
        """
        DayStore(self.workspace.data_dir).require_whole(LOOKBACK_DAYS)
        log.info("tick (%s) starts: today is day %d", trigger, DayStore(self.workspace.data_dir).last_day())
        done = [self.run("simulate_day", {}, trigger)]
        if done[0]["status"] != "succeeded":
            log.warning("run %s: the arrival %s, so nothing is evaluated or trained on a stale day",
                        done[0]["id"], done[0]["status"])
            return done
        self._between_steps()
        if not self.stop.is_set():
            done.append(self.run("evaluate", {}, trigger))
        today = DayStore(self.workspace.data_dir).last_day()
        refresh_alerts(self.workspace, MODEL_ALERTS)  # today's scores may raise what triggers a training
        for due in due_trainings(self.workspace, today):
            self._between_steps()
            if self.stop.is_set():
                break
            if due.model not in {d.model for d in due_trainings(self.workspace, today)}:
                log.info("tick skips %s: no longer due (deleted, paused or trained meanwhile)", due.model)
                continue
            log.info("tick trains %s: %s", due.model, due.reason)
            done.append(self.run("train", {"model": due.model, "reason": due.reason}, trigger))
        failed = [r["id"] for r in done if r["status"] != "succeeded"]
        log.info("tick (%s) done: day %d, %d run(s), not succeeded: %s", trigger, today, len(done), failed or "none")
        return done

    def _between_steps(self) -> None:
        """Serve the requests queued so far (not queued ticks), so that they wait one step at most."""
        if self.serving and not self.stop.is_set():
            self.serve_queue(limit=len(self.runs.queued()), exclude_tasks=("tick",))

    # -- queued requests ----------------------------------------------------------------------
    def serve_queue(self, limit: int = 1, exclude_tasks: tuple[str, ...] = ()) -> bool:
        """Claim and carry out up to ``limit`` queued requests, oldest first; whether any ran."""
        served = 0
        while served < limit and not self.stop.is_set() and self.runs.queued():
            run = self.runs.claim_next_queued(exclude_tasks=exclude_tasks)
            if run is None:
                break
            served += 1
            log.info("run %s claimed: %s %s (queued at %s)", run["id"], run["task"], run["params"], run["created_at"])
            try:
                self._carry_out(run)
            except Exception as exc:  # the request fails, recorded with the reason; the runner goes on
                log.exception("run %s could not be carried out", run["id"])
                self.close(run["id"], "failed", f"{type(exc).__name__}: {exc}")
        return served > 0

    def _carry_out(self, run: dict) -> None:
        """Execute a claimed request under its own run id, or close it saying why it cannot run."""
        task, params = run["task"], dict(run["params"])
        if task == "tick":
            self._queued_tick(run)
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

    def _queued_tick(self, run: dict) -> None:
        """A queued ``tick`` (``{"days": N}``): N ticks as sub-runs; the meta-run says how they went."""
        days = run["params"].get("days", 1)
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            self.close(run["id"], "failed", f"tick days must be a positive integer, got {days!r}; queue e.g. {{'days': 1}}")
            return
        trigger = "backfill" if days > 1 else "manual"
        sub, ticked = [], 0
        for _ in range(days):
            if self.stop.is_set():
                break
            sub += self.tick(trigger)
            ticked += 1
        bad = [r["id"] for r in sub if r["status"] != "succeeded"]
        if ticked < days:
            status, error = "interrupted", f"interrupted: the runner stopped after {ticked} of {days} tick(s)"
        elif bad:
            status, error = "failed", f"{len(bad)} of {len(sub)} sub-run(s) did not succeed: {', '.join(bad)}"
        else:
            status, error = "succeeded", None
        self.close(run["id"], status, error)
        log.info("run %s %s: %d tick(s), %d sub-run(s)", run["id"], status, ticked, len(sub))

    # -- single runs --------------------------------------------------------------------------
    def run(self, task: str, params: dict, trigger: str, run_id: str | None = None) -> dict:
        """One task as a recorded run, retried after a delay while it fails, up to ``retries`` times."""
        attempt = 1
        while True:
            run = self._attempt(task, params, trigger, run_id, attempt)
            if run["status"] != "failed" or attempt > self.settings.retries or self.stop.is_set():
                return run
            if task == "train" and params["model"] not in self.registry.models():
                return run  # deleted: nothing left to retry
            log.info("run %s failed; retrying %s as attempt %d in %g s", run["id"], task, attempt + 1,
                     self.settings.retry_delay_s)
            if self.stop.wait(self.settings.retry_delay_s):
                return run
            attempt, run_id = attempt + 1, None

    def _attempt(self, task: str, params: dict, trigger: str, run_id: str | None, attempt: int) -> dict:
        """Execute one attempt, visible as ``current``; never raises for a run that breaks."""
        if run_id is None:
            run_id = jobs.start_run(self.workspace, task, params, trigger=trigger, attempt=attempt)
        model = params.get("model") if task == "train" else None
        with self._current_lock:
            self.current = Current(run_id, task, model, self._created(model))
        try:
            run = jobs.run_task(self.workspace, task, params, trigger=trigger, run_id=run_id,
                                settings=self.settings.job_settings(), attempt=attempt)
        except Exception as exc:  # recorded as the run's failure, with the traceback in the log
            log.exception("run %s broke outside its notebook", run_id)
            run = self.close(run_id, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            with self._current_lock:
                self.current = None
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

    # -- ending the current run from another thread -------------------------------------------
    def end_current_if_needed(self, stop_reason: str | None = None) -> str | None:
        """End the current run if ``stop_reason`` is given or its model was deleted; returns its id.

        Its process tree (forked task, kernel) is killed and the run recorded interrupted (a
        stop) or cancelled (a deleted model); a run that succeeded meanwhile stays succeeded.
        """
        with self._current_lock:
            current = self.current
            if current is None or current.ended:
                return None
            if stop_reason:
                status, reason = "interrupted", stop_reason
            elif current.model and self._created(current.model) != current.created:
                status, reason = "cancelled", (f"cancelled: model {current.model!r} was deleted while it trained;"
                                               " no version was registered")
            else:
                return None
            jobs.end_as(current.run_id, status, reason)
            killed = kill_children()
            current.ended = True
        log.warning("run %s ending as %s, task processes %s killed: %s", current.run_id, status, killed, reason)
        return current.run_id

