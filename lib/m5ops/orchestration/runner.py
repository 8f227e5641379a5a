"""The runner: a long-running process that ticks the simulated days and carries out manual requests.

    Runner(workspace, RunnerSettings(day_seconds=10)).serve()   # until SIGINT or SIGTERM

- **Ticks** (``schedule``: daily at ``--at``, or every ``--day-seconds`` in demo mode): the
  arrival notebook, the evaluation of all models, the issue of forecasts, then one training
  notebook per active model whose weekly retraining is due; a paused model is skipped
  (``ticks.TICK_STEPS``). A tick's steps are done before the next tick begins; its trainings
  may still train meanwhile, each at the cutoff of its tick's day.
- **Lanes** (``--workers``, default 2): one lane carries out trainings, one the rest, so an
  evaluation, an arrival or a tick's step never waits behind a training; never two trainings
  of one model at once, never two arrivals at once (``lanes``). ``--workers 1``: one lane, one
  run at a time.
- **Requests** queued in ``runs.db`` (``--queue`` on the CLI, or the dashboard): train, evaluate,
  simulate_day, and tick (``{"days": N}``, a meta-run over its sub-runs). A lane claims one
  within ``poll_s`` once it is free; each run executes in a forked child (``executor``), on a
  warm kernel of the runner's pool (``warm_spares``: started ahead, one run each, then discarded).
- **Executor** (``--executor``): each run executes in a child forked here (``local``), or on a
  worker of a Dask cluster (``dask --scheduler ADDR``, ``dask_executor``, a fresh kernel per run);
  the lanes and their rules stay here either way.
- **Failures**: a failing run (or one whose Dask worker was lost, recorded interrupted) is
  retried after ``retry_delay_s``, up to ``retries`` times; a run
  past its timeout is killed with its kernel; a training whose model is deleted while it runs is
  killed and recorded cancelled. The runner carries on.
- **Restart**: one driver per workspace (``lock.RunnerLock``; a second one exits naming the
  first one's pid). At start, the task processes a killed driver left are killed, its runs
  marked interrupted, and if ticks were missed meanwhile the last one runs once (``scheduling``).
- **Heartbeat**: a watcher thread beats in ``runs.db`` every ``beat_s``, naming every run that
  executes now (``m5ops status``).
- **Stop**: on SIGINT or SIGTERM the runner claims nothing more and lets the running runs finish
  for up to ``grace_s`` (a second signal cuts that short), else kills them and records them
  interrupted; then it clears its heartbeat and releases the lock.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime

import psutil
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from m5ops.errors import M5opsError, ParameterError, RunFailed, RunnerError
from m5ops.orchestration.alert_hook import notify
from m5ops.orchestration.executor import warm_kernels
from m5ops.orchestration.executors import make_executor
from m5ops.orchestration.lock import TOKEN_ENV, RunnerLock, kill_leftovers
from m5ops.orchestration.scheduling import (
    RunnerSettings, add_arguments, build_scheduler, missed_tick, next_run_utc,
)
from m5ops.orchestration.ticks import TICK_STEPS
from m5ops.orchestration.work import Work
from m5ops.pipeline.alerts import refresh_alerts
from m5ops.stores.clock import parse_time, utc_now
from m5ops.stores.runner_state import RunnerState
from m5ops.stores.layout import Workspace

__all__ = ["Runner", "RunnerError", "RunnerSettings", "add_arguments", "backfill", "main", "run_from_args"]
log = logging.getLogger("m5ops.runner")
WATCH_S = 0.25  # how often the watcher looks at the current run (stop grace, deleted model)


class Runner:
    """The process that drives one workspace: schedule, lanes, heartbeat, signals, lock."""

    def __init__(self, workspace: Workspace, settings: RunnerSettings | None = None, *, serving: bool = True):
        self.workspace = workspace
        self.settings = settings or RunnerSettings()
        self.serving = serving  # False: ticks in this thread only (``backfill``, benchmarks), no lanes
        self.stopping = threading.Event()
        self.work = Work(workspace, self.settings, self.stopping)
        self.runs = self.work.runs
        self.state = RunnerState(workspace.runs_path)
        self._deadline: float | None = None
        self._why_stop = ""
        self.lost: str | None = None  # why the executor's cluster was lost, if it was

    def serve(self) -> str:
        """Drive the workspace until SIGINT or SIGTERM: catch up, tick on schedule, serve the queue in lanes."""
        if not self.serving:
            raise RunnerError("this Runner was made with serving=False (ticks in this thread only); make it"
                              " with serving=True to serve the workspace")
        with RunnerLock(self.workspace) as lock, self.handling_signals(), self.using_executor(), \
                self.watching(beat=True):
            self.recover(lock)
            log.info("runner started, pid %d: ticks %s, lanes: %s, retries %d, timeout %g s, executor %s",
                     os.getpid(), self.settings.describe(), self.settings.describe_lanes(), self.settings.retries,
                     self.settings.timeout_s, self.work.executor.describe())
            # warm kernels serve the local executor; a Dask worker starts its own
            local = self.work.executor.name == "local"
            with warm_kernels(warm_spares(self.settings.workers), self.settings.niceness) if local \
                    else contextlib.nullcontext(), \
                    self.work.in_lanes(self.settings.workers):  # on the way out: waits for every lane's run
                self._catch_up()
                self._schedule_until_stopped()
        log.info("runner stopped (%s)", self._why_stop)
        if self.lost:
            raise RunFailed(f"runner stopped: {self.lost}; restart it once the scheduler is back")
        return f"runner stopped ({self._why_stop})"

    @contextlib.contextmanager
    def using_executor(self):
        """Runs execute where ``--executor`` says while inside (a Dask cluster: connected and checked first)."""
        executor = make_executor(self.settings.executor, self.settings.scheduler, on_lost=self._executor_lost)
        executor.start(self.workspace)  # RunnerError (exit 2) if the cluster cannot be reached
        self.work.executor = executor
        try:
            yield executor
        finally:
            executor.close()

    def _executor_lost(self, why: str) -> None:
        """The cluster is gone: submit nothing more, and stop."""
        self.lost = why
        log.error("%s: the runner submits no more runs and stops", why)
        self.stop("the Dask scheduler was lost")

    def _schedule_until_stopped(self) -> None:
        """Fire the scheduled ticks (each once the previous tick's steps are done) until the runner stops."""
        scheduler = build_scheduler(self.settings, self._scheduled_tick)
        noted = None
        while not self.stopping.is_set():
            try:
                if not self.work.ticking():
                    scheduler.run_pending()
                if noted != scheduler.next_run:
                    noted = scheduler.next_run
                    self.state.set_state(next_tick_at=next_run_utc(scheduler))
            except M5opsError as exc:  # runs.db busy for too long, registry unreadable: wait, retry
                log.error("%s; the runner retries in 5 s", exc)
                self.stopping.wait(5.0)
            self.stopping.wait(self.settings.poll_s)

    def stop(self, why: str = "requested") -> None:
        """Claim nothing more; the running runs get ``grace_s`` to finish (a second call: none)."""
        if self.stopping.is_set():
            self._deadline = time.monotonic()
            log.warning("second stop request (%s): interrupting the running runs now", why)
            return
        self._why_stop = why
        self._deadline = time.monotonic() + self.settings.grace_s
        self.stopping.set()
        log.info("stop requested (%s): the running runs, if any, get %g s to finish", why, self.settings.grace_s)

    @contextlib.contextmanager
    def handling_signals(self):
        """SIGINT and SIGTERM call ``stop`` while inside (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        pid = os.getpid()

        def handler(signum, frame):
            if os.getpid() == pid:  # a forked task inherits this handler: there, the signal is ignored
                self.stop(signal.Signals(signum).name)
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    @contextlib.contextmanager
    def watching(self, beat: bool):
        """A thread that beats the heartbeat (if ``beat``) and ends running runs when they must."""
        done = threading.Event()
        thread = threading.Thread(target=self._watch, args=(done, beat), name="m5ops-watcher", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            if beat:
                self.state.clear_heartbeat(os.getpid())

    def check_alerts(self) -> None:
        """Record what is wrong now (raised once, cleared when over) and hand each change to --on-alert."""
        raised, cleared = refresh_alerts(self.workspace)
        for alert in raised + cleared:
            notify(self.settings.on_alert, alert)

    def _watch(self, done: threading.Event, beat: bool) -> None:
        """Beat every ``beat_s``; end a run whose model is deleted, and every run once the stop grace is over."""
        next_beat = next_alerts = 0.0
        while True:
            try:
                if time.monotonic() >= next_alerts:
                    self.check_alerts()
                    next_alerts = time.monotonic() + self.settings.alert_every_s
                if beat and time.monotonic() >= next_beat:
                    self.state.beat(os.getpid(), ", ".join(self.work.current_run_ids()) or None)
                    next_beat = time.monotonic() + self.settings.beat_s
                over = self._deadline is not None and time.monotonic() >= self._deadline
                self.work.end_runs_if_needed(
                    f"interrupted: the runner was stopped ({self._why_stop}) before the run finished"
                    f" (grace {self.settings.grace_s:g} s)" if over else None)
            except Exception:  # a busy runs.db, say: logged with its traceback, tried again
                log.exception("the watcher hit an error; it carries on")
            if done.wait(WATCH_S):
                return

    def recover(self, lock: RunnerLock) -> None:
        """Clean up after a driver that died: kill the tasks it left, mark its runs interrupted."""
        killed = kill_leftovers(lock.previous.get("token"))
        if killed:
            log.warning("killed %d task process(es) left by pid %s: %s", len(killed), lock.previous.get("pid"), killed)
        os.environ[TOKEN_ENV] = lock.token  # inherited by every task process and kernel from now on
        dead = lock.previous.get("pid")
        for run in self.runs.running():
            if not run["pid"] or run["pid"] in (dead, os.getpid()) or not psutil.pid_exists(run["pid"]):
                self.work.close(run["id"], "interrupted",
                                f"interrupted: its process (pid {run['pid']}) stopped before the run finished")
                log.warning("run %s (%s) marked interrupted: pid %s is gone", run["id"], run["task"], run["pid"])

    def _catch_up(self) -> None:
        """Run the last missed tick once if the schedule fired while no runner ran; note this start."""
        state = self.state.state()
        last = parse_time(state.get("last_tick_at")) or parse_time(state.get("runner_started_at"))
        self.state.set_state(runner_started_at=utc_now(), schedule=self.settings.describe())
        if missed_tick(self.settings, last, datetime.now().astimezone()):
            log.info("catch-up: a tick fell due since %s; running it once now", last.isoformat(timespec="seconds"))
            self._scheduled_tick()

    def _scheduled_tick(self) -> None:
        """The schedule's job: one tick, whose start is remembered for the catch-up."""
        if self.stopping.is_set():
            return
        self.state.set_state(last_tick_at=utc_now())
        try:
            self.work.start_tick("schedule")  # its steps and trainings go to the lanes
        except Exception:  # a tick that breaks unexpectedly is logged with its traceback; the runner goes on
            log.exception("the tick stopped on an unexpected error; the runner carries on")


def warm_spares(workers: int) -> int:
    """Warm kernels a runner keeps: one per notebook step of a tick (back to back), one per training lane."""
    return sum(step.task is not None for step in TICK_STEPS) + workers - 1


def backfill(workspace: Workspace, days: int, settings: RunnerSettings | None = None,
             progress: bool = True) -> list[dict]:
    """``m5ops tick --days N``: N full ticks now, holding the runner lock; returns every run."""
    if days < 1:
        raise ParameterError(f"--days must be at least 1, got {days}")
    runner = Runner(workspace, settings, serving=False)
    trigger = "backfill" if days > 1 else "manual"
    done: list[dict] = []
    with RunnerLock(workspace, what=f"m5ops tick --days {days}") as lock, runner.handling_signals(), \
            runner.using_executor(), runner.watching(beat=False):
        runner.recover(lock)
        # log lines go above the bar, and a bar off a terminal stays silent: its final line shows once
        # (several days: the next runs' kernels warm up while one runs)
        warm = days > 1 and runner.work.executor.name == "local"
        with warm_kernels(warm_spares(1), runner.settings.niceness) if warm else contextlib.nullcontext(), \
                logging_redirect_tqdm([logging.getLogger("m5ops")]), \
                tqdm(total=days, desc="ticks", unit="day", disable=None if progress else True) as bar:
            for _ in range(days):
                if runner.stopping.is_set():
                    break
                done += runner.work.tick(trigger)
                bar.update(1)
    return done


def run_from_args(workspace: Workspace, args: argparse.Namespace) -> str:
    """``m5ops runner``: serve the workspace with settings from the parsed arguments."""
    return Runner(workspace.require(), RunnerSettings.from_args(args)).serve()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``runner/run_runner.py``: the same as ``m5ops runner``."""
    from m5ops.logs import configure
    from m5ops.stores.layout import default_home

    parser = argparse.ArgumentParser(prog="run_runner.py", description="Run the m5ops runner (the scheduler).")
    parser.add_argument("--home", default=None, help="workspace folder (default: $M5OPS_HOME, else ./workspace)")
    args = add_arguments(parser).parse_args(argv)
    workspace = Workspace(args.home or default_home())
    configure(workspace.logs_dir if workspace.exists() else None)
    try:
        print(run_from_args(workspace, args))
    except RunFailed as exc:  # stopped by a fault (the Dask scheduler lost): status 1, as ``m5ops runner``
        print(f"run_runner: {exc}", file=sys.stderr)
        return 1
    except M5opsError as exc:
        print(f"run_runner: {exc}", file=sys.stderr)
        return 2
    return 0
