"""Running one task as a recorded notebook run (the runner's Work chains them into ticks)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import nbformat

from m5ops.data.schema import day_date
from m5ops.data.store import DayStore
from m5ops.orchestration import executor
from m5ops.orchestration.executors import Executor, LocalExecutor
from m5ops.stores.runs import RunStore
from m5ops.stores.layout import Workspace

log = logging.getLogger("m5ops.jobs")
DEFAULT_TIMEOUT_S = 3600.0


@dataclass
class JobSettings:
    """How one run is executed: its timeout, the niceness of its processes, where (retries are the runner's)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    niceness: int = 0
    executor: Executor = field(default_factory=LocalExecutor)


def run_day(workspace: Workspace, params: dict) -> int:
    """The simulated day a run starts on: a training's pinned ``day``, else today."""
    day = params.get("day")
    return day if day is not None else DayStore(workspace.data_dir).last_day()


def sim_date_for(workspace: Workspace, task: str, params: dict | None = None) -> str:
    """The simulated date a run belongs to: the arriving day for an arrival, else its day (today)."""
    day = run_day(workspace, params or {})
    return str(day_date(day + 1 if task == "simulate_day" else day).date())


_ENDINGS: dict[str, tuple[str, str]] = {}  # run id -> (status, reason) for runs killed on purpose
_ENDINGS_LOCK = threading.Lock()


def end_as(run_id: str, status: str, reason: str) -> None:
    """Record ``run_id`` as ``status`` (interrupted or cancelled) with ``reason`` if its process is killed.

    Call it just before killing a running task on purpose (the runner does when the model is
    deleted or its stop grace is over): the execution then ends as failed, and ``run_task``
    records this status and reason instead. A run that succeeded anyway stays succeeded.
    """
    with _ENDINGS_LOCK:
        _ENDINGS[run_id] = (status, reason)


def end_run(run_id: str, status: str, reason: str, where: Executor | None = None) -> list[int]:
    """End a run executing in this process on purpose: ``end_as``, then kill its processes; their pids.

    [] when its process has not started yet: call again (the runner's watcher does, every beat).
    """
    end_as(run_id, status, reason)
    return (where or LocalExecutor()).kill(run_id)


def _note_stopped(output, reason: str) -> None:
    """Append why a run was stopped on purpose to its executed notebook, if one was written."""
    try:
        nb = nbformat.read(output, as_version=4)
        nb.cells.append(nbformat.v4.new_markdown_cell(f"**m5ops: this run was stopped.** {reason}"))
        nbformat.write(nb, output)
    except (OSError, ValueError) as exc:
        log.warning("could not annotate the notebook %s: %s", output, exc)


def check_params(workspace: Workspace, task: str, params: dict) -> None:
    """A ParameterError if ``task`` is unknown or ``params`` are not what its notebook takes."""
    executor.get_task(task).validate({"home": str(workspace.home), "run_id": "x", **params})


def start_run(workspace: Workspace, task: str, params: dict | None = None, *, trigger: str = "manual",
              attempt: int = 1) -> str:
    """Check a task's parameters, then record it as a run, running now in this process; returns its id."""
    params = dict(params or {})
    check_params(workspace, task, params)
    return RunStore(workspace.runs_path).new_run(
        task, model=params.get("model"), params=params, trigger=trigger, status="running",
        sim_day=run_day(workspace, params), attempt=attempt)


def run_task(workspace: Workspace, task: str, params: dict | None = None, *, trigger: str = "manual",
             run_id: str | None = None, settings: JobSettings | None = None, attempt: int = 1) -> dict:
    """Execute one task notebook as a run recorded in runs.db; returns the finished run."""
    settings = settings or JobSettings()
    runs = RunStore(workspace.runs_path)
    params = dict(params or {})
    model = params.get("model")
    if run_id is None:
        run_id = start_run(workspace, task, params, trigger=trigger, attempt=attempt)  # checks the params
    else:
        check_params(workspace, task, params)
    output = executor.output_path(workspace.outputs_dir, sim_date_for(workspace, task, params), task, run_id, model)
    runs.set_output(run_id, str(output))
    log.info("run %s started task=%s model=%s trigger=%s attempt=%d", run_id, task, model, trigger, attempt)
    result = settings.executor.execute(task, {"home": str(workspace.home), "run_id": run_id, **params}, output,
                                       settings.timeout_s, niceness=settings.niceness)
    with _ENDINGS_LOCK:
        ending = _ENDINGS.pop(run_id, None)
    status, error = result.status, result.error
    if ending and status == "failed":  # killed on purpose: say so in the record and in the notebook
        status, error = ending
        _note_stopped(result.output, error)
    runs.finish(run_id, status, output=str(result.output), error=error)
    if error:
        log.warning("run %s %s: %s", run_id, status, error)
    return runs.get(run_id)
