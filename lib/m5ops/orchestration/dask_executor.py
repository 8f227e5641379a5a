"""Runs executed on the workers of a Dask cluster, by the same frame as locally (``executor.execute``).

    m5ops runner --executor dask --scheduler tcp://HOST:8786

The runner keeps the schedule, the queue, the lanes and every rule about what may run at once;
a lane that carries out a run submits it here and waits for it, so the cluster never holds
more runs than the runner's lanes. On the worker, the run is one call of ``executor.execute``
(validated parameters, Papermill into ``outputs/``, the timeout, the notebook kept on failure)
in a kernel no other run has used, warmed ahead by the worker's own pool (its first run waits
for one); the worker records its address in ``runs.db``.

Faults:

- **a worker lost mid-run** (killed, its machine gone): its task process dies with it (the
  frame ties it to its parent) and the frame's writes are atomic, so no half version or day is
  left. Dask would hand the task to another worker; that worker sees the run already taken
  (``RunStore.claim_worker``) and does not execute it again, and the waiting lane notices the
  lost worker in any case: the run is recorded ``interrupted`` and the runner's retry rule
  retries it as a new run, on a worker that is alive.
- **the scheduler unreachable at start**: RunnerError (exit status 2) saying how to start one.
- **the scheduler lost while running**: after ``lost_after_s`` without it, the runs waiting on
  it are recorded interrupted and ``on_lost`` is told once (the runner stops submitting runs
  and stops, with one log line): nothing waits forever.

Every worker must see the workspace at the same path (a shared filesystem): ``start`` checks
that each one reads a probe file the runner just wrote, and refuses naming those that do not.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from m5ops.errors import RunnerError
from m5ops.stores.runs import RunStore

log = logging.getLogger("m5ops.executor")
SCHEDULER_ENV = "M5OPS_DASK_SCHEDULER"  # set for the run's kernel: a distributed LightGBM trains on this cluster
INSTALL = "pip install 'm5ops[dask]'"
RUN_RESOURCE = "m5ops_run"  # dask worker --resources m5ops_run=1: one run at a time on that worker
POLL_S = 0.5
WORKER_SPARES = 2  # warm kernels a worker keeps: one for its next run, one warming (a worker runs one at a time)
WORKER_CHECK_S = 2.0


def require_distributed():
    """The ``distributed`` module, or a RunnerError with the install command."""
    try:
        import distributed
    except ImportError:
        raise RunnerError(f"--executor dask needs Dask distributed, which is not installed: {INSTALL}") from None
    return distributed


class DaskExecutor:
    """Submits each run to the cluster whose scheduler is at ``address`` and waits for it."""

    name = "dask"

    def __init__(self, address: str, connect_timeout_s: float = 10.0, lost_after_s: float = 10.0,
                 on_lost: Callable[[str], None] | None = None):
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self.lost_after_s = lost_after_s
        self.on_lost = on_lost or (lambda why: None)
        self.client = None
        self.runs: RunStore | None = None
        self.lost: str | None = None  # why the scheduler counts as lost, once it does
        self.resources: dict | None = None  # what each run asks of its worker (RUN_RESOURCE, if declared)
        self._placed: dict[str, str] = {}  # run id -> the worker it was sent to, while it executes
        self._placing = threading.Lock()

    # -- start and stop -------------------------------------------------------------------------
    def start(self, workspace) -> None:
        """Connect to the scheduler and check that every worker sees the workspace; RunnerError if not."""
        distributed = require_distributed()
        self.runs = RunStore(workspace.runs_path)
        try:
            self.client = distributed.Client(self.address, timeout=self.connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise RunnerError(f"cannot reach the Dask scheduler at {self.address} ({type(exc).__name__}: {exc});"
                              f" start one with 'dask scheduler' and workers with 'dask worker {self.address}',"
                              " or run the runner with --executor local") from None
        blind = workers_not_seeing(self.client, Path(workspace.home))
        if blind:
            self.close()
            raise RunnerError(f"Dask worker(s) {', '.join(blind)} do not see the workspace {workspace.home}: put it"
                              " on storage every worker mounts at the same path (a shared filesystem), then"
                              " check it on a worker with 'm5ops --home ... check'")
        workers = self.workers() or {}
        if workers and all(RUN_RESOURCE in (w.get("resources") or {}) for w in workers.values()):
            self.resources = {RUN_RESOURCE: 1}
        else:
            log.warning("not every Dask worker declares --resources %s=1: a worker may take two runs at once"
                        " (start workers with 'dask worker %s --nthreads 1 --resources %s=1')", RUN_RESOURCE,
                        self.address, RUN_RESOURCE)
        log.info("Dask executor: scheduler %s, %d worker(s): %s", self.address, len(workers), ", ".join(sorted(workers)))

    def close(self) -> None:
        """Close the connection (the cluster stays up)."""
        if self.client is not None:
            try:
                self.client.close(timeout=5)
            except Exception as exc:  # a lost scheduler: nothing left to close cleanly
                log.debug("closing the Dask client: %s", exc)
            self.client = None

    def describe(self) -> str:
        return f"dask (scheduler {self.address}, {len(self.workers() or {})} worker(s))"

    def workers(self, timeout_s: float = 5.0) -> dict | None:
        """The workers the scheduler knows now, by address; None if it does not answer within ``timeout_s``."""
        try:  # never the plain scheduler_info(): without a scheduler it waits for one forever
            info = self.client.sync(self.client.scheduler.identity, n_workers=-1, callback_timeout=timeout_s)
        except Exception as exc:  # a timeout, a closed comm: the caller counts the scheduler offline
            log.debug("the Dask scheduler did not answer: %s", exc)
            return None
        return dict(info.get("workers", {}))

    # -- one run --------------------------------------------------------------------------------
    def execute(self, task: str, params: dict, output: Path, timeout_s: float, niceness: int = 0):
        """Submit one run to the cluster and wait for its end: succeeded, failed or interrupted."""
        from m5ops.orchestration import executor

        executor.get_task(task).validate(params)  # refused here, before the cluster sees it
        run_id = str(params["run_id"])
        started = time.monotonic()
        if self.lost or not self._connected():
            self._scheduler_lost()
            return self._ended(output, started, "interrupted", f"interrupted: not submitted, {self.lost}")
        placement = self._place(run_id)
        future = self.client.submit(run_on_worker, str(self.runs.path), task, params, str(output), timeout_s,
                                    niceness, self.address, key=f"m5ops-run-{run_id}", pure=False, retries=0,
                                    resources=self.resources, **placement)
        try:
            return self._wait(future, run_id, output, started)
        finally:
            future.release()
            with self._placing:
                self._placed.pop(run_id, None)

    def _place(self, run_id: str) -> dict:
        """Send the run to a worker none of this runner's runs occupies, if there is one.

        The scheduler alone cannot be trusted with it: a run secedes from its worker's thread
        (so that a distributed fit's tasks run there too), after which the scheduler counts that
        worker idle and may queue the next run behind the first one's resource while another
        worker stands free. The preference is loose: should that worker leave, Dask sends the run
        elsewhere.
        """
        workers = self.workers() or {}
        with self._placing:
            busy = set(self._placed.values())
            free = sorted(address for address, info in workers.items() if address not in busy
                          and (self.resources is None or RUN_RESOURCE in (info.get("resources") or {})))
            if not free:
                return {}  # every worker runs one of ours: the run waits for the first resource freed
            self._placed[run_id] = free[0]
        return {"workers": [free[0]], "allow_other_workers": True}

    def _wait(self, future, run_id: str, output: Path, started: float):
        """The run's result, or interrupted once its worker or the scheduler is lost."""
        offline_since, next_check = None, time.monotonic() + WORKER_CHECK_S
        while True:
            if future.done():
                return self._result(future, output, started)
            if self.lost:  # another lane found the scheduler lost
                return self._ended(output, started, "interrupted", f"interrupted: {self.lost}")
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + WORKER_CHECK_S
                workers = self.workers() if self.client.status == "running" else None
                if workers is None:  # the scheduler does not answer: lost once that lasts lost_after_s
                    offline_since = offline_since or time.monotonic()
                    if time.monotonic() - offline_since >= self.lost_after_s:
                        return self._ended(output, started, "interrupted", self._scheduler_lost())
                else:
                    offline_since = None
                    lost = self._lost_worker(run_id, workers)
                    if lost:
                        future.cancel()
                        return self._ended(output, started, "interrupted", f"interrupted: worker {lost} left"
                                           " the cluster (killed?) while the run executed on it", worker=lost)
            time.sleep(POLL_S)

    def _result(self, future, output: Path, started: float):
        """The Execution the worker reported; a task Dask gave up on (its worker died) is interrupted."""
        try:
            done = future.result()
        except Exception as exc:  # KilledWorker, CancelledError, a worker that could not unpickle...
            if self.client.status != "running" or "connection" in str(exc):  # Dask cancels it with the scheduler
                return self._ended(output, started, "interrupted", self._scheduler_lost())
            reason = f"interrupted: the cluster lost the run ({type(exc).__name__}: {exc})"
            return self._ended(output, started, "interrupted", reason)
        return self._ended(output, started, done["status"], done["error"], worker=done["worker"],
                           duration_s=done["duration_s"])

    def _lost_worker(self, run_id: str, workers: dict) -> str | None:
        """The address of the worker that took the run if it is not among ``workers`` any more, else None."""
        worker = self.runs.get(run_id).get("worker")
        return worker if worker and worker not in workers else None

    def _connected(self) -> bool:
        """Whether the client is connected, waiting up to ``lost_after_s`` while it reconnects."""
        deadline = time.monotonic() + self.lost_after_s
        while self.client.status in ("connecting", "newly-created") and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return self.client.status == "running"

    def _scheduler_lost(self) -> str:
        """Count the scheduler as lost (once): say so, and tell ``on_lost``."""
        if not self.lost:
            self.lost = f"the Dask scheduler at {self.address} is unreachable (stopped? the network?)"
            log.error("%s: the runs waiting on it are recorded interrupted and no run is submitted any more",
                      self.lost)
            self.on_lost(self.lost)
        return f"interrupted: {self.lost}"

    @staticmethod
    def _ended(output: Path, started: float, status: str, error: str | None, worker: str | None = None,
               duration_s: float | None = None):
        """An ``executor.Execution`` naming the worker."""
        from m5ops.orchestration.executor import Execution

        duration = time.monotonic() - started if duration_s is None else duration_s
        return Execution(status, Path(output), duration, error, details={"worker": worker})

    # -- ending a run on purpose ----------------------------------------------------------------
    def kill(self, run_id: str) -> list:
        """Kill the run's process tree on its worker; [] while no worker has taken it (try again)."""
        worker = self.runs.get(run_id).get("worker") if self.runs else None
        if not worker or self.client is None or self.lost:
            return []
        try:
            killed = self.client.run(kill_on_worker, run_id, workers=[worker], on_error="return")
        except Exception as exc:  # the worker left meanwhile: the lane sees it lost
            log.warning("could not reach worker %s to end run %s: %s", worker, run_id, exc)
            return []
        pids = killed.get(worker)
        return pids if isinstance(pids, list) else []


# -- on a worker -------------------------------------------------------------------------------------
def run_on_worker(runs_path: str, task: str, params: dict, output: str, timeout_s: float, niceness: int,
                  scheduler: str) -> dict:
    """Execute one run here, on a Dask worker, unless another worker took it first (then it was lost)."""
    from distributed import get_worker, secede

    address = get_worker().address
    # The run waits on its own processes: its thread slot goes back to the worker, so that the
    # cluster's own tasks (a distributed LightGBM fit's) run here too; RUN_RESOURCE stays held.
    secede()
    earlier = RunStore(runs_path).claim_worker(str(params["run_id"]), address)
    if earlier:
        return {"status": "interrupted", "duration_s": 0.0, "worker": earlier,
                "error": f"interrupted: worker {earlier} took this run and was lost before it finished;"
                         f" {address} does not execute it again (the runner retries it as a new run)"}
    os.environ[SCHEDULER_ENV] = scheduler  # inherited by the run's kernel (a distributed LightGBM uses it)
    from m5ops.orchestration import executor  # imported once per worker process: papermill with it

    executor.keep_warm_kernels(WORKER_SPARES, niceness)  # the first run here starts cold, the next ones warm
    result = executor.execute(task, params, Path(output), timeout_s, niceness=niceness)
    return {"status": result.status, "error": result.error, "duration_s": result.duration_s, "worker": address}


def kill_on_worker(run_id: str) -> list[int]:
    """On a worker (``Client.run``): kill the run's process tree if it executes here."""
    from m5ops.orchestration import executor

    return executor.kill_run(run_id)


# -- the shared workspace ----------------------------------------------------------------------------
def workers_not_seeing(client, home: Path) -> list[str]:
    """Addresses of the workers that cannot read a probe file just written into the workspace."""
    token = secrets.token_hex(8)
    probe = home / f".m5ops-probe-{token}"
    probe.write_text(token)
    try:
        seen = client.run(read_probe, str(probe), on_error="return")
    finally:
        probe.unlink(missing_ok=True)
    return sorted(address for address, text in seen.items() if text != token)


def read_probe(path: str) -> str | None:
    """On a worker: the probe file's text, None if it cannot be read here."""
    try:
        return Path(path).read_text()
    except OSError:
        return None


def check_on_workers(address: str, home: str) -> dict[str, list[str]]:
    """``m5ops check --scheduler``: on every worker, the problems ``m5ops check`` finds in ``home`` there."""
    distributed = require_distributed()
    try:
        client = distributed.Client(address, timeout=10, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise RunnerError(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc});"
                          " start one with 'dask scheduler'") from None
    try:
        blind = set(workers_not_seeing(client, Path(home)))
        found = client.run(check_here, home, on_error="return")
    finally:
        client.close()
    return {worker: (["the workspace is not visible here (not the same shared storage?)"] if worker in blind
                     else problems if isinstance(problems, list) else [f"the check broke: {problems}"])
            for worker, problems in found.items()}


def check_here(home: str) -> list[str]:
    """On a worker: ``m5ops check`` of ``home`` as this worker sees it, one line per problem."""
    from m5ops.errors import M5opsError
    from m5ops.pipeline.check import check_workspace
    from m5ops.stores.layout import Workspace

    try:
        return [problem.line() for problem in check_workspace(Workspace(home))]
    except M5opsError as exc:
        return [str(exc)]
