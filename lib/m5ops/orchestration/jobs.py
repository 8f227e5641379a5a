"""Running tasks as recorded notebook runs, and the tick that chains them for one simulated day."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from m5ops.data.schema import day_date
from m5ops.data.store import DayStore
from m5ops.orchestration import executor
from m5ops.registry import Registry
from m5ops.runs import RunStore
from m5ops.workspace import Workspace

log = logging.getLogger("m5ops.jobs")
DEFAULT_TIMEOUT_S = 3600.0


@dataclass
class JobSettings:
    """How runs are executed: timeout per run and retries after a failure."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = 0
    retry_delay_s: float = 5.0


def sim_date_for(workspace: Workspace, task: str) -> str:
    """The simulated date a run belongs to: the arriving day for an arrival, else today."""
    today = DayStore(workspace.data_dir).last_day()
    return str(day_date(today + 1 if task == "simulate_day" else today).date())


def run_task(workspace: Workspace, task: str, params: dict | None = None, *, trigger: str = "manual",
             run_id: str | None = None, settings: JobSettings | None = None) -> dict:
    """Execute one task notebook as a run recorded in runs.db; returns the finished run."""
    settings = settings or JobSettings()
    runs = RunStore(workspace.runs_path)
    params = dict(params or {})
    model = params.get("model")
    executor.get_task(task).validate({"home": str(workspace.home), "run_id": "x", **params})
    if run_id is None:
        run_id = runs.new_run(task, model=model, params=params, trigger=trigger, status="running",
                              sim_day=DayStore(workspace.data_dir).last_day())
    output = executor.output_path(workspace.outputs_dir, sim_date_for(workspace, task), task, run_id, model)
    runs.set_output(run_id, str(output))
    log.info("run %s started task=%s model=%s trigger=%s", run_id, task, model, trigger)
    result = executor.execute(task, {"home": str(workspace.home), "run_id": run_id, **params}, output, settings.timeout_s)
    runs.finish(run_id, result.status, output=str(result.output), error=result.error)
    if result.error:
        log.warning("run %s failed: %s", run_id, result.error)
    return runs.get(run_id)


def run_with_retries(workspace: Workspace, task: str, params: dict | None = None, *, trigger: str = "manual",
                     settings: JobSettings | None = None, sleep=None) -> dict:
    """``run_task``, repeated as a new attempt after a delay while it fails, up to ``retries`` times."""
    import time

    settings = settings or JobSettings()
    run = run_task(workspace, task, params, trigger=trigger, settings=settings)
    for _attempt in range(settings.retries):
        if run["status"] == "succeeded":
            break
        (sleep or time.sleep)(settings.retry_delay_s)
        run = run_task(workspace, task, params, trigger=trigger, settings=settings)
    return run


def tick(workspace: Workspace, *, trigger: str = "schedule", settings: JobSettings | None = None) -> list[dict]:
    """One simulated day: arrival, evaluation of every model, then the trainings that are due."""
    done = [run_with_retries(workspace, "simulate_day", trigger=trigger, settings=settings)]
    if done[0]["status"] != "succeeded":
        log.warning("tick stopped: the arrival failed, so nothing is evaluated or trained on a stale day")
        return done
    done.append(run_with_retries(workspace, "evaluate", trigger=trigger, settings=settings))
    today = DayStore(workspace.data_dir).last_day()
    for name in Registry(workspace.registry_path).due_for_training(today):
        done.append(run_with_retries(workspace, "train", {"model": name}, trigger=trigger, settings=settings))
    return done
