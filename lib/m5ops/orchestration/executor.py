"""The fixed frame around one task notebook run: validate, inject, execute, time out, keep the output.

Papermill is imported once by the long-lived process that imports this module; each run is
executed in a forked child, and a run past its timeout is killed with its whole process tree
(jupyter_client starts the kernel in a session of its own, so a process-group kill would miss
it): a hung or OOM-killed kernel never hangs the caller.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from m5ops.errors import ParameterError
from m5ops.notebooks import NOTEBOOKS_DIR
from m5ops.orchestration.processes import KILL_GRACE_S, die_with_parent, kill_tree
from m5ops.stores.registry import NAME_RULE, is_model_name

log = logging.getLogger("m5ops.executor")


@dataclass(frozen=True)
class TaskSpec:
    """A task notebook and the parameters it accepts (name -> allowed Python types)."""

    name: str
    notebook: str
    params: dict[str, tuple[type, ...]]
    model_param: str | None = None

    def validate(self, params: dict) -> dict:
        """The parameters, checked by name and type before they reach the notebook."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ParameterError(f"task {self.name!r} has no parameter {unknown[0]!r}; it takes {sorted(self.params)}")
        for name, value in params.items():
            if not isinstance(value, self.params[name]) or isinstance(value, bool) and bool not in self.params[name]:
                allowed = " or ".join(t.__name__ for t in self.params[name])
                raise ParameterError(f"task {self.name!r}: parameter {name!r} must be {allowed}, got {value!r}")
        for name in ("model",) if self.model_param else ():
            if not is_model_name(params.get(name)):
                raise ParameterError(f"task {self.name!r}: model name {params.get(name)!r} is not a slug {NAME_RULE}")
        for model in params.get("models") or []:
            if not is_model_name(model):
                raise ParameterError(f"task {self.name!r}: model name {model!r} is not a slug {NAME_RULE}")
        return params


_COMMON = {"home": (str,), "run_id": (str,)}
TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Make a task known to the executor."""
    TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The task of that name, or a ParameterError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ParameterError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


register(TaskSpec("simulate_day", "simulate_day.ipynb", {**_COMMON, "seed": (int, type(None))}))
register(TaskSpec("train", "train.ipynb", {**_COMMON, "model": (str,), "manual": (bool,), "reason": (str,),
                                            "force": (bool,), "actor": (str, type(None)), "day": (int, type(None))},
                  model_param="model"))
register(TaskSpec("evaluate", "evaluate.ipynb", {**_COMMON, "models": (list, type(None))}))
register(TaskSpec("issue_forecast", "issue_forecast.ipynb", {**_COMMON, "models": (list, type(None))}))


def output_path(outputs: Path, sim_date: str, task: str, run_id: str, model: str | None = None) -> Path:
    """``outputs/<sim-date>/<task>[-<model>]-<run-id>.ipynb``."""
    stem = f"{task}-{model}" if model else task
    return Path(outputs) / sim_date / f"{stem}-{run_id}.ipynb"


_RUNNING: dict[str, int] = {}  # run id -> pid of its task process, while the run executes here
_RUNNING_LOCK = threading.Lock()


def kill_run(run_id: str) -> list[int]:
    """SIGKILL the process tree (task process, kernel) of a run executing in this process; their pids.

    [] when the run has no process (yet, or any more): a caller ending it on purpose tries again.
    Runs execute side by side in the runner's lanes, so a run is ended by its id, never by
    killing every child of the runner.
    """
    with _RUNNING_LOCK:
        pid = _RUNNING.get(run_id)
    return kill_tree(pid) if pid else []


@dataclass
class Execution:
    """How one notebook run ended."""

    status: str  # succeeded | failed
    output: Path
    duration_s: float
    error: str | None = None
    details: dict = field(default_factory=dict)


def execute(task: str, params: dict, output: Path, timeout_s: float = 3600.0, niceness: int = 0) -> Execution:
    """Run a task notebook into ``output``; never raises for a failing notebook, only for bad input.

    The run's process and its kernel get ``niceness`` more than the caller: a runner's training
    then yields the CPU to the dashboard instead of slowing its page down.
    """
    spec = get_task(task)
    spec.validate(params)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(str(NOTEBOOKS_DIR / spec.notebook), str(output), params, sender,
                                                 niceness, os.getpid()))
    child.start()
    sender.close()
    run_id = str(params.get("run_id"))
    with _RUNNING_LOCK:
        _RUNNING[run_id] = child.pid
    try:
        error = _wait(child, receiver, timeout_s)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.pop(run_id, None)
    duration = time.monotonic() - started
    if error and "timed out" in error:
        _note_in_notebook(output, error)
    status = "failed" if error else "succeeded"
    log.info("run %s task=%s status=%s duration=%.1fs output=%s", params.get("run_id"), task, status, duration, output)
    return Execution(status, output, duration, error)


def _wait(child, receiver, timeout_s: float) -> str | None:
    """The child's error message (None on success); kills its whole process group past the timeout."""
    if receiver.poll(timeout_s):
        try:
            message = receiver.recv()
        except EOFError:
            message = "the task process died without a result"
        child.join(KILL_GRACE_S)
        kill_tree(child.pid)
        return message
    kill_tree(child.pid)
    child.join(KILL_GRACE_S)
    return f"timed out after {timeout_s:.0f} s: the task and its kernel were killed"


def _child(notebook: str, output: str, params: dict, sender, niceness: int, parent: int) -> None:
    """In the forked child: execute, report an error string or None; dies with its parent."""
    import papermill  # already imported by the parent: free after fork

    if die_with_parent() and os.getppid() != parent:
        os._exit(1)  # the parent died before the signal was armed: nobody waits for this run
    message = None
    try:
        if niceness:
            os.nice(niceness)  # inherited by the kernel papermill starts
        papermill.execute_notebook(notebook, output, parameters=params, kernel_name="python3",
                                   progress_bar=False, cwd=str(NOTEBOOKS_DIR))
    except papermill.PapermillExecutionError as exc:
        message = f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
    except Exception as exc:  # the parent records any failure of the run, whatever raised it
        message = f"{type(exc).__name__}: {exc}"
    sender.send(message)
    sender.close()
    os._exit(0)


def _note_in_notebook(output: Path, error: str) -> None:
    """Append the reason to a killed run's notebook so that the file explains itself."""
    try:
        nb = nbformat.read(output, as_version=4) if output.is_file() else nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_markdown_cell(f"**m5ops: this run failed.** {error}"))
        nbformat.write(nb, output)
    except (OSError, ValueError) as exc:
        log.warning("could not annotate %s: %s", output, exc)


import papermill  # noqa: E402,F401  (imported here, once, so forked runs start without paying for it)
