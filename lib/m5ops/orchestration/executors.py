"""Where runs execute: the seam between the runner (what runs when) and the execution of one run.

    executor = make_executor(settings)     # "local" (a forked child here) or "dask" (a worker)
    executor.start(workspace)              # connects, checks; RunnerError if it cannot
    executor.execute(task, params, output, timeout_s, niceness)   # -> executor.Execution
    executor.kill(run_id)                  # end a run on purpose (deleted model, stop grace)
    executor.close()

Both run the same frame (``executor.execute``: validate, Papermill, timeout, kill_tree, keep
the output); the Dask one only moves it onto a worker of a cluster. The runner's lanes, queue
and rules stay where they are: an executor never decides what may run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from m5ops.errors import RunnerError

EXECUTORS = ("local", "dask")


class Executor(Protocol):
    """What the runner needs from wherever runs execute."""

    name: str

    def start(self, workspace) -> None:
        """Get ready to execute runs of ``workspace``; RunnerError saying what to do if it cannot."""

    def execute(self, task: str, params: dict, output: Path, timeout_s: float, niceness: int = 0):
        """One run of the frame; an ``executor.Execution`` (its ``details`` may name the worker)."""

    def kill(self, run_id: str) -> list:
        """End a run executing now; what was killed, [] if it has no process yet (try again)."""

    def close(self) -> None:
        """Let go of what ``start`` took."""

    def describe(self) -> str:
        """Where runs execute, in words, for the runner's start line."""


class LocalExecutor:
    """Each run in a child forked from this process (the default, as on one machine)."""

    name = "local"

    def start(self, workspace) -> None:
        """Nothing to connect to."""

    def execute(self, task: str, params: dict, output: Path, timeout_s: float, niceness: int = 0):
        """``executor.execute`` here."""
        from m5ops.orchestration import executor  # late: importing it imports papermill

        return executor.execute(task, params, output, timeout_s, niceness=niceness)

    def kill(self, run_id: str) -> list:
        """Kill the run's process tree in this process."""
        from m5ops.orchestration import executor

        return executor.kill_run(run_id)

    def close(self) -> None:
        """Nothing to let go."""

    def describe(self) -> str:
        return "local (a forked process per run)"


def make_executor(name: str = "local", scheduler: str | None = None, **options) -> Executor:
    """The executor called ``name``; RunnerError naming the choices, or the missing --scheduler."""
    if name == "local":
        return LocalExecutor()
    if name == "dask":
        if not scheduler:
            raise RunnerError("--executor dask needs the cluster's scheduler: pass --scheduler tcp://HOST:8786"
                              " (start one with 'dask scheduler', workers with 'dask worker tcp://HOST:8786')")
        from m5ops.orchestration.dask_executor import DaskExecutor  # late: needs the [dask] extra

        return DaskExecutor(scheduler, **options)
    raise RunnerError(f"--executor {name!r} is not one of {', '.join(EXECUTORS)}: use local (the default) or dask")
