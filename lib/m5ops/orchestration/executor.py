"""The fixed frame around one task notebook run: validate, inject, execute, time out, keep the output.

Papermill is imported once by the long-lived process that imports this module; each run is
executed in a forked child, and a run past its timeout is killed with its whole process tree
(jupyter_client starts the kernel in a session of its own, so a process-group kill would miss
it): a hung or OOM-killed kernel never hangs the caller.

Inside ``warm_kernels(spares)`` (the runner, while it serves) a run takes a warm kernel from a
``kernel_pool.KernelPool`` of this process: started ahead, ``m5ops`` imported, never used by
another run. The forked child connects to it through the ``m5ops`` Papermill engine
(``engine.WarmKernelEngine``); afterwards, and at a timeout or kill, this process kills it. Outside
a pool (a plain caller, a Dask worker) each run starts a fresh kernel through the same engine.
"""
from __future__ import annotations

import atexit
import contextlib
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
from m5ops.orchestration import engine
from m5ops.orchestration.kernel_pool import KernelPool, WarmKernel
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


_RUNNING: dict[str, tuple[int, ...]] = {}  # run id -> pids of its task process (and warm kernel) while it runs
_RUNNING_LOCK = threading.Lock()
_POOL: KernelPool | None = None  # while inside ``warm_kernels``, or once ``keep_warm_kernels`` started it
_POOL_START_LOCK = threading.Lock()


def kill_run(run_id: str) -> list[int]:
    """SIGKILL the process tree (task process, kernel) of a run executing in this process; their pids.

    [] when the run has no process (yet, or any more): a caller ending it on purpose tries again.
    Runs execute side by side in the runner's lanes, so a run is ended by its id, never by
    killing every child of the runner.
    """
    with _RUNNING_LOCK:
        pids = _RUNNING.get(run_id, ())
    return [killed for pid in reversed(pids) for killed in kill_tree(pid)]  # the kernel first: it does the work


@contextlib.contextmanager
def warm_kernels(spares: int, niceness: int = 0):
    """Runs executed in this process while inside each take a warm kernel from a pool of ``spares``.

    The kernels run at ``niceness`` more than this process (as a run's would); on the way out
    every spare is killed.
    """
    global _POOL
    if _POOL is not None:
        raise RuntimeError("warm_kernels is already active in this process: one pool per process")
    pool = KernelPool(spares, niceness=niceness, cwd=NOTEBOOKS_DIR).start()
    _POOL = pool
    compile_notebook_validator()
    log.info("keeping %d warm kernel(s) at niceness +%d", spares, niceness)
    try:
        yield pool
    finally:
        _POOL = None
        pool.shutdown()


def keep_warm_kernels(spares: int, niceness: int = 0) -> KernelPool:
    """This process's pool of ``spares`` warm kernels, started on the first call and shut down at exit.

    For a process that executes runs for as long as it lives without a place to hold
    ``warm_kernels`` open: a Dask worker. Its kernels die with it even when it is killed.
    """
    global _POOL
    with _POOL_START_LOCK:
        if _POOL is None:
            _POOL = KernelPool(spares, niceness=niceness, cwd=NOTEBOOKS_DIR).start()
            atexit.register(_POOL.shutdown)
            compile_notebook_validator()
            log.info("keeping %d warm kernel(s) at niceness +%d in this process (%d)", spares, niceness, os.getpid())
        return _POOL


def compile_notebook_validator() -> None:
    """Read and write a task notebook as Papermill does, so that forked runs inherit nbformat's validator.

    nbformat compiles its JSON-schema validator on first use (about 0.1 s). A forked run that
    compiles it pays that every time and throws the result away with its process; compiled once
    here, in the process that forks them, every run starts with it.
    """
    from papermill.iorw import load_notebook_node

    nbformat.writes(load_notebook_node(str(NOTEBOOKS_DIR / TASKS["evaluate"].notebook)))


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
    kernel = _take_kernel(niceness)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(str(NOTEBOOKS_DIR / spec.notebook), str(output), params, sender,
                                                 niceness, os.getpid(), kernel and kernel.handover()))
    run_id = str(params.get("run_id"))
    succeeded = False
    try:
        child.start()
        sender.close()
        with _RUNNING_LOCK:
            _RUNNING[run_id] = (child.pid, kernel.pid) if kernel else (child.pid,)
        error = _wait(child, receiver, timeout_s)
        succeeded = error is None
    finally:
        with _RUNNING_LOCK:
            _RUNNING.pop(run_id, None)
        if kernel is not None:  # one run per kernel, whatever happened
            if succeeded:
                kernel.discard_soon()  # reaped off the run's path: 20-40 ms less a run
            else:  # gone before the failure is reported: a timed-out or failed run's kernel is dead when it is
                kernel.discard()
    duration = time.monotonic() - started
    if error and "timed out" in error:
        _note_in_notebook(output, error)
    status = "failed" if error else "succeeded"
    log.info("run %s task=%s status=%s duration=%.1fs output=%s", params.get("run_id"), task, status, duration, output)
    return Execution(status, output, duration, error)


def _take_kernel(niceness: int) -> WarmKernel | None:
    """A warm kernel from this process's pool, at the run's niceness; None without a pool (or none in time)."""
    pool = _POOL
    if pool is None:
        return None
    kernel = pool.take()
    if kernel is None:
        log.warning("no warm kernel came in %g s: this run starts its own", pool.start_timeout_s)
    elif niceness:
        kernel.renice(os.getpriority(os.PRIO_PROCESS, 0) + niceness)
    return kernel


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


def _child(notebook: str, output: str, params: dict, sender, niceness: int, parent: int,
           warm_kernel: dict | None = None) -> None:
    """In the forked child: execute, report an error string or None; dies with its parent."""
    import papermill  # already imported by the parent: free after fork

    if die_with_parent() and os.getppid() != parent:
        os._exit(1)  # the parent died before the signal was armed: nobody waits for this run
    message = None
    try:
        if niceness:
            os.nice(niceness)  # inherited by the kernel papermill starts (a warm one is reniced by the parent)
        papermill.execute_notebook(notebook, output, parameters=params, kernel_name="python3",
                                   engine_name=engine.ENGINE_NAME, warm_kernel=warm_kernel,
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

engine.register()
