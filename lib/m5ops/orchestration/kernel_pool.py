"""Warm kernels: started ahead, with the heavy imports done, each handed to exactly one run.

    with KernelPool(spares=3, niceness=10) as pool:   # the runner holds one while it serves
        kernel = pool.take()          # a live kernel no run has used (waits while one warms up)
        ...                           # the run connects to it from its forked task process
        kernel.discard()              # killed after its one run, whatever happened

A kernel costs about 1 s to start and 1.6 s more to import ``m5ops`` (pandas, matplotlib,
pyarrow, the model libraries). The pool's filler threads keep ``spares`` kernels started and
importing while runs execute (one at a time, two while a run waits), so a run finds its kernel ready. Isolation is kept: a spare has
run only ``preload`` (imports, no run's code), a taken kernel never returns to the pool, and a
spare found dead (OOM-killed, a port clash at start) is replaced, never handed out.

The kernels are children of the process holding the pool (the runner), not of the forked task
process that uses one: a kernel dies with that process (its parent-death signal is armed before
its interpreter starts), and the executor kills a run's kernel itself at its timeout or when the
run is ended. The filler threads run at the pool's niceness, which every kernel it starts
inherits (Linux niceness is per thread).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from jupyter_client import KernelManager

from m5ops.orchestration.processes import dies_with_this_thread, kill_tree, signal_tree, wait_gone

log = logging.getLogger("m5ops.executor")
KERNEL_NAME = "python3"
START_TIMEOUT_S = 60.0  # a kernel that does not answer by then is discarded (papermill's own default)
WATCH_S = 0.5  # how often the filler looks for dead spares
# after a run ends, how long the pool waits for the next before warming (a spare in stock): a tick's
# notebooks run back to back, and a kernel warming beside the next one slowed it by a fifth
QUIET_S = 1.5
# kernels starting at once: one while runs execute (a warming kernel then takes one core, not the run's),
# a second while a run waits for a kernel (two lanes may each wait for one)
FILLERS = 2
# what the task notebooks import: loaded into a spare before any run may take it. pyarrow.dataset
# and pandas_compat are what each task's first parquet read imports (22 ms, every run otherwise)
PRELOAD = ("m5ops.pipeline.figures", "m5ops.pipeline.tasks", "lightgbm", "sklearn.ensemble",
           "pyarrow.dataset", "pyarrow.pandas_compat", "scipy.stats", "scipy.spatial.distance")


def preload() -> None:
    """In a spare kernel, at its start: import what the notebooks import, and pay their first calls."""
    import importlib

    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError:  # a kind's library not installed: the notebook that needs it says so itself
            pass
    _warm_charts()
    _warm_first_calls()
    try:  # the code's git state for lineage: cached per process, it costs three git commands per run otherwise
        from m5ops.pipeline.lineage import code_version

        code_version()  # the code imported now is the code this kernel will run
    except ImportError:
        pass
    _freeze_imported_objects()


def _freeze_imported_objects() -> None:
    """Keep the garbage collector off the million objects the imports made, for the run to come.

    A fresh process holds them in its young generations, so a run's first allocations (unpickling
    a model, building frames) set off full collections over all of them: loading a ``hist_gb``
    version took 0.14-0.16 s instead of 0.04 s. ``gc.freeze`` moves them to a permanent
    generation that collections skip; the kernel serves one run and is discarded, so nothing
    frozen needs collecting later.
    """
    import gc

    gc.collect()
    gc.freeze()


def _warm_charts() -> None:
    """Draw one small chart as the notebooks' charts are drawn: a kernel's first also loads fonts and the renderer."""
    from matplotlib.figure import Figure

    from m5ops.pipeline.figures import Chart

    figure = Figure(figsize=(2, 1))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], label="warm-up")
    axes.set_title("warm-up")
    axes.legend()
    Chart(figure, "warm-up").png()


def _warm_first_calls() -> None:
    """Pay, in the spare, what each library's first call in a process costs (0.15-0.2 s a task).

    On tiny made-up data, never a run's: a parquet round trip (pyarrow builds its schema
    machinery on the first file), a model of each library fitted and used (threadpoolctl finds
    the OpenMP runtimes, scikit-learn's input checks discover narwhals' plugins, each OpenMP
    runtime starts its threads). A library not installed is skipped.
    """
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"day": np.arange(4), "sales": np.ones(4, dtype=np.float32)}), buffer)
    pq.ParquetFile(io.BytesIO(buffer.getvalue())).read().to_pandas()
    X = np.column_stack([np.arange(40.0), np.arange(40) % 3])
    y = np.arange(40.0) % 5
    try:
        import threadpoolctl
        from sklearn.ensemble import HistGradientBoostingRegressor

        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            HistGradientBoostingRegressor(max_iter=2, categorical_features=np.array([False, True])).fit(X, y).predict(X)
    except ImportError:
        pass
    try:
        import lightgbm

        booster = lightgbm.train({"objective": "poisson", "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 1},
                                 lightgbm.Dataset(X, y), num_boost_round=2)
        booster.predict(X, num_threads=1)
    except ImportError:
        pass


# --history in memory: runs side by side must not share IPython's sqlite file (nbclient does the same)
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:",
                    "--IPKernelApp.exec_lines=from m5ops.orchestration.kernel_pool import preload as _p; _p(); del _p"]


@dataclass(eq=False)
class WarmKernel:
    """A started kernel (a child of this process) with its connection info; ``handover`` goes to its run."""

    manager: KernelManager
    pid: int
    started: float = field(default_factory=time.monotonic)
    ready_s: float | None = None  # start to ready (imports done), once ready
    on_discard: Callable[[], None] | None = None  # the pool's: this kernel's run is over

    def __post_init__(self):
        self.process = psutil.Process(self.pid)  # remembers its start time: a reused pid is not it

    def handover(self) -> dict:
        """What a task process in another process needs to connect (``engine.HandedKernelManager``)."""
        return {"connection": self.manager.get_connection_info(), "pid": self.pid,
                "create_time": self.process.create_time()}

    def alive(self) -> bool:
        """Whether the kernel process still runs (a dead one is never handed out)."""
        if self.manager.provisioner.process.poll() is not None:  # reaps it if it died
            return False
        try:
            return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def renice(self, niceness: int) -> None:
        """Raise every thread of the kernel to ``niceness`` (never lowers it: that needs privileges)."""
        try:
            for thread in psutil.Process(self.pid).threads():
                if os.getpriority(os.PRIO_PROCESS, thread.id) < niceness:
                    os.setpriority(os.PRIO_PROCESS, thread.id, niceness)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass  # died meanwhile: its run will fail on a dead kernel

    def discard(self) -> list[int]:
        """Kill the kernel (and anything it started), reap it, remove its connection file; the pids killed."""
        return self._reap(signal_tree(self.pid))

    def discard_soon(self) -> list[int]:
        """``discard``, with only the kill on the caller's path; the pids killed.

        A kernel that held a run's data takes 20-40 ms to go after its SIGKILL: the caller (a
        run that just ended) goes on at once, and a thread of this process waits for the
        kernel, reaps it and cleans up after it (``wait_for_discards`` waits for those threads).
        """
        tree = signal_tree(self.pid)
        reaper = threading.Thread(target=self._reap, args=(tree,), name=f"m5ops-reap-{self.pid}", daemon=True)
        with _REAPERS_LOCK:
            _REAPERS.add(reaper)
        reaper.start()
        return [process.pid for process in tree]

    def _reap(self, tree: list[psutil.Process]) -> list[int]:
        """Wait for the signalled ``tree`` to go, remove the connection file, tell the pool; the pids."""
        killed = wait_gone(tree)
        try:
            self.manager.cleanup_resources()
        except Exception as exc:  # a connection file already gone, say: logged, the kernel is dead anyway
            log.warning("cleaning up after kernel %d: %s", self.pid, exc)
        if self.on_discard is not None:
            self.on_discard()
            self.on_discard = None
        with _REAPERS_LOCK:
            _REAPERS.discard(threading.current_thread())
        return killed


_REAPERS: set[threading.Thread] = set()  # threads of ``discard_soon`` still waiting for their kernel
_REAPERS_LOCK = threading.Lock()


def wait_for_discards(timeout_s: float = 10.0) -> None:
    """Return once every kernel discarded by ``discard_soon`` is gone and reaped (or ``timeout_s`` passed)."""
    deadline = time.monotonic() + timeout_s
    with _REAPERS_LOCK:
        reapers = list(_REAPERS)
    for reaper in reapers:
        reaper.join(max(0.0, deadline - time.monotonic()))


class KernelPool:
    """``spares`` warm kernels, refilled by a thread of this process as runs take them."""

    def __init__(self, spares: int, niceness: int = 0, cwd: Path | str | None = None,
                 kernel_name: str = KERNEL_NAME, start_timeout_s: float = START_TIMEOUT_S):
        if spares < 1:
            raise ValueError(f"a kernel pool needs at least 1 spare, got {spares}")
        self.spares, self.niceness, self.kernel_name = spares, niceness, kernel_name
        self.cwd = str(cwd) if cwd else None
        self.start_timeout_s = start_timeout_s
        self.replaced = 0  # spares found dead and replaced
        self._ready: list[WarmKernel] = []
        self._starting: list[WarmKernel] = []
        self._slots = 0  # kernels being started now (a slot is taken before its kernel exists)
        self._waiting = 0  # runs waiting in ``take`` for a kernel
        self._in_use = 0  # kernels taken and not yet discarded: runs executing now
        self._last_release = -QUIET_S  # monotonic time a taken kernel was last discarded
        self._closed = threading.Event()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "KernelPool":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def start(self) -> "KernelPool":
        """Start the filler threads (each starts one kernel at a time)."""
        for i in range(min(self.spares, FILLERS)):
            thread = threading.Thread(target=self._fill, name=f"m5ops-kernel-pool-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def take(self, timeout_s: float | None = None) -> WarmKernel | None:
        """A ready, live, never used kernel, now yours; waits while one warms up; None if none came in time."""
        deadline = time.monotonic() + (self.start_timeout_s if timeout_s is None else timeout_s)
        with self._changed:
            while not self._closed.is_set():
                while self._ready:
                    kernel = self._ready.pop(0)
                    self._changed.notify_all()  # the filler starts the next one now
                    if kernel.alive():
                        self._in_use += 1
                        kernel.on_discard = self._released
                        return kernel
                    self._replace(kernel)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._waiting += 1
                self._changed.notify_all()  # a second filler may start one now
                try:
                    self._changed.wait(min(left, WATCH_S))
                finally:
                    self._waiting -= 1
        return None

    def pids(self) -> list[int]:
        """The pids of the pool's kernels now (ready and starting)."""
        with self._changed:
            return [k.pid for k in self._ready + self._starting]

    def ready_count(self) -> int:
        """How many spares are ready to be taken now."""
        with self._changed:
            return len(self._ready)

    def ready_seconds(self) -> list[float]:
        """How long each ready spare took from its start to ready (kernel start and preload)."""
        with self._changed:
            return [k.ready_s for k in self._ready]

    def wait_full(self, timeout_s: float) -> bool:
        """Wait until every spare is ready (benchmarks, tests); whether they were in time."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._ready) < self.spares and time.monotonic() < deadline:
                self._changed.wait(min(WATCH_S, max(0.0, deadline - time.monotonic())))
            return len(self._ready) >= self.spares

    def shutdown(self) -> list[int]:
        """Stop refilling and kill every spare, the one starting too; their pids (all gone on return)."""
        self._closed.set()
        with self._changed:
            spares, self._ready = self._ready, []
            starting = list(self._starting)
            self._changed.notify_all()
        killed = [pid for kernel in spares for pid in kernel.discard()]
        for kernel in starting:
            killed += kill_tree(kernel.pid)  # its filler sees it die and cleans up after it
        for thread in self._threads:
            thread.join()
        wait_for_discards()  # the kernels of the last runs too
        return killed

    # -- in the filler thread --------------------------------------------------------------
    def _fill(self) -> None:
        """Keep ``spares`` kernels ready; replace dead ones; until shut down."""
        if self.niceness:  # this thread only; the kernels it starts inherit it
            mine = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, mine, min(19, os.getpriority(os.PRIO_PROCESS, mine) + self.niceness))
        while not self._closed.is_set():
            with self._changed:
                for kernel in [k for k in self._ready if not k.alive()]:
                    self._ready.remove(kernel)
                    self._replace(kernel)
                if self._should_wait():
                    self._changed.wait(WATCH_S)
                    continue
                self._slots += 1
            try:
                kernel = self._start_one()
            except Exception:  # no kernel could start (ports, a broken install): logged, tried again
                log.exception("a spare kernel could not start; the pool tries again in 5 s")
                kernel = None
                self._closed.wait(5.0)
            with self._changed:
                self._slots -= 1
                if kernel is not None and not self._closed.is_set():
                    self._ready.append(kernel)
                    self._changed.notify_all()
                    kernel = None
            if kernel is not None:  # shut down meanwhile
                kernel.discard()

    def _start_one(self) -> WarmKernel | None:
        """Start a kernel and wait until it has imported ``PRELOAD``; None if it died or the pool closed."""
        manager = KernelManager(kernel_name=self.kernel_name)
        # the parent-death signal, armed before the kernel's interpreter starts: sent when this filler
        # thread ends, with the pool's process (even on SIGKILL) or at its shutdown (which kills them anyway)
        manager.start_kernel(extra_arguments=list(KERNEL_ARGUMENTS), cwd=self.cwd, preexec_fn=dies_with_this_thread())
        kernel = WarmKernel(manager, manager.provisioner.process.pid)
        with self._changed:
            self._starting.append(kernel)
        try:
            ready = self._wait_ready(kernel)
        finally:
            with self._changed:
                self._starting.remove(kernel)
        if ready and not self._closed.is_set():
            kernel.ready_s = time.monotonic() - kernel.started
            log.debug("spare kernel %d ready in %.2f s", kernel.pid, kernel.ready_s)
            return kernel
        if not self._closed.is_set():
            log.warning("spare kernel %d %s; starting another", kernel.pid,
                        "died while it started" if not kernel.alive() else "did not answer in time")
        kernel.discard()
        return None

    def _wait_ready(self, kernel: WarmKernel) -> bool:
        """Whether the kernel answered ``kernel_info`` (it does once its start-up code ran) in time."""
        client = kernel.manager.blocking_client()
        client.start_channels()
        deadline = time.monotonic() + self.start_timeout_s
        asked: set[str] = set()
        try:
            while time.monotonic() < deadline and not self._closed.is_set() and kernel.alive():
                asked.add(client.kernel_info())  # queued until the kernel serves: it answers each, in order
                try:
                    reply = client.get_shell_msg(timeout=0.5)
                except queue.Empty:  # still starting
                    continue
                if reply["parent_header"].get("msg_id") in asked:
                    return True
            return False
        finally:
            client.stop_channels()

    def _released(self) -> None:
        """A taken kernel was discarded: its run is over."""
        with self._changed:
            self._in_use -= 1
            self._last_release = time.monotonic()
            self._changed.notify_all()

    def _should_wait(self) -> bool:
        """Whether a filler waits instead of starting a kernel now (call under the lock).

        Warming takes a core for seconds, which on a small machine is the running run's core: while
        runs execute and a spare is in stock for the next one, the pool waits for them to end, and
        for ``QUIET_S`` more, in case the next run follows at once (a tick's steps do).
        """
        if len(self._ready) + self._slots >= self.spares:
            return True
        if self._waiting:
            return False  # a run waits for a kernel: start one whatever else runs
        if self._slots:
            return True  # one kernel warms at a time unless a run waits
        if not self._ready:
            return False
        return bool(self._in_use) or time.monotonic() - self._last_release < QUIET_S

    def _replace(self, kernel: WarmKernel) -> None:
        """A spare found dead: cleaned up, counted; the filler starts another (call under the lock)."""
        self.replaced += 1
        log.warning("spare kernel %d died while it waited for a run; it is replaced", kernel.pid)
        kernel.discard()  # dead already: reaps it and removes its connection file
        self._changed.notify_all()
