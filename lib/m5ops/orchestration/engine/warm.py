"""The ``m5ops`` Papermill engine: nbclient on a handed-over warm kernel, writing the output less often.

    papermill.execute_notebook(src, out, engine_name="m5ops", warm_kernel=kernel.handover())
    papermill.execute_notebook(src, out, engine_name="m5ops")   # no pool (a Dask worker): a fresh kernel

Registered in the ``papermill.engine`` entry-point group (``pyproject.toml``; imported through its
package, see ``__init__``) and, for an install whose metadata predates it, by ``register()``. It
is Papermill's ``NBClientEngine`` with two differences:

- ``warm_kernel`` (``kernel_pool.WarmKernel.handover()``): the run connects to a kernel another
  process started (the runner's pool) instead of starting one, and leaves its shutdown to that
  owner. Its client is ready as soon as the kernel answers and IOPub delivers, without
  jupyter_client's fixed 0.2 s flush of IOPub.
- Saves: Papermill writes the output notebook at the start, at each cell's start and end, at the
  end, and once more in ``execute_notebook`` (2N+3 writes). Here: at the start (a run killed at
  once still leaves its notebook), at each code cell's end (a run killed later keeps what ran),
  and once at the end by ``execute_notebook`` itself (C+2 for C code cells). Long cells still
  autosave every 30 s.
"""
from __future__ import annotations

import os
import time
from queue import Empty

import psutil
from jupyter_client import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_hook, run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, catch_nb_assignment, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

ENGINE_NAME = "m5ops"


class HandedKernelManager(AsyncKernelManager):
    """A kernel started and owned by another process, as nbclient's ``km``: alive while its pid lives."""

    def __init__(self, handover: dict, **kwargs):
        super().__init__(owns_kernel=False, **kwargs)  # never shut down from here: its owner discards it
        self.load_connection_info(handover["connection"])
        self.kernel_pid = handover["pid"]
        self._create_time = handover["create_time"]

    @property
    def has_kernel(self) -> bool:
        """Started already (nbclient starts none)."""
        return True

    async def _async_is_alive(self) -> bool:
        """The kernel process is the one handed over and has not exited."""
        try:
            process = psutil.Process(self.kernel_pid)
            return process.create_time() == self._create_time and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    async def _async_signal_kernel(self, signum: int) -> None:
        """Signal the kernel process (an interrupt, if nbclient is asked to interrupt on timeout)."""
        os.kill(self.kernel_pid, signum)


async def until_ready(client, timeout_s: float) -> None:
    """Return once the kernel answers on shell and IOPub delivers to ``client``; DeadKernelError if it died."""
    deadline = time.monotonic() + timeout_s
    while True:
        msg_id = client.kernel_info()
        try:
            reply = await ensure_async(client.shell_channel.get_msg(timeout=1))
        except Empty:
            reply = None
        if reply is not None and reply["parent_header"].get("msg_id") == msg_id:
            try:  # its busy/idle status: IOPub is subscribed, no output of the first cell can be lost
                await ensure_async(client.iopub_channel.get_msg(timeout=0.2))
                return
            except Empty:
                pass
        if not await ensure_async(client.is_alive()):
            raise DeadKernelError("the handed-over kernel died before the run began")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the handed-over kernel did not answer in {timeout_s:.0f} s")


class HandedKernelClient(PapermillNotebookClient):
    """Papermill's notebook client on a kernel that is already up: connect, check, run."""

    async def async_start_new_kernel_client(self):
        """A client on the handed-over kernel, ready without the fixed IOPub flush."""
        self.kc = self.km.client()
        await ensure_async(self.kc.start_channels())
        await until_ready(self.kc, self.startup_timeout)
        self.kc.allow_stdin = False
        await run_hook(self.on_notebook_start, notebook=self.nb)
        return self.kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)


class FewerSaves(NotebookExecutionManager):
    """Papermill's execution state, minus the save at each cell's start and the duplicate one at the end."""

    _saving = True
    final_save = False  # set when the engine raises: then nobody else writes the notebook

    @catch_nb_assignment
    def save(self, **kwargs):
        """Write the notebook, unless this is one of the saves left out."""
        if self._saving:
            super().save(**kwargs)

    @catch_nb_assignment
    def cell_start(self, cell, cell_index=None, **kwargs):
        """Mark the cell running, without writing (its end is written)."""
        self._saving = False
        try:
            super().cell_start(cell, cell_index, **kwargs)
        finally:
            self._saving = True

    @catch_nb_assignment
    def cell_complete(self, cell, cell_index=None, **kwargs):
        """Mark the cell done; written only after a code cell (a markdown cell adds nothing to keep)."""
        self._saving = cell.cell_type == "code"
        try:
            super().cell_complete(cell, cell_index, **kwargs)
        finally:
            self._saving = True

    @catch_nb_assignment
    def notebook_complete(self, **kwargs):
        """Finish the metadata; written here only on an exception (else ``execute_notebook`` writes it next)."""
        self._saving = self.final_save
        try:
            super().notebook_complete(**kwargs)
        finally:
            self._saving = True


class WarmKernelEngine(NBClientEngine):
    """nbclient, on a handed-over warm kernel if given (``warm_kernel``), else on a fresh one."""

    @classmethod
    def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                         autosave_cell_every=30, **kwargs):
        """Papermill's frame around the execution, with ``FewerSaves``."""
        nb_man = FewerSaves(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                            autosave_cell_every=autosave_cell_every)
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        except BaseException:
            nb_man.final_save = True
            raise
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, warm_kernel=None, log_output=False, stdout_file=None,
                                 stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
        """Execute in the handed-over kernel, or, without one, as ``NBClientEngine`` does."""
        if warm_kernel is None:
            return super().execute_managed_notebook(nb_man, kernel_name, log_output=log_output,
                                                    stdout_file=stdout_file, stderr_file=stderr_file,
                                                    start_timeout=start_timeout,
                                                    execution_timeout=execution_timeout, **kwargs)
        timeout = execution_timeout or kwargs.get("timeout")
        kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(kwargs, timeout=timeout, startup_timeout=start_timeout,
                                    kernel_name=kernel_name, log=logger, log_output=log_output,
                                    stdout_file=stdout_file, stderr_file=stderr_file)
        return HandedKernelClient(nb_man, km=HandedKernelManager(warm_kernel), **final_kwargs).execute()


def register() -> None:
    """Make the engine known to Papermill in this process, if its entry point did not already."""
    try:
        papermill_engines.get_engine(ENGINE_NAME)
    except Exception:  # PapermillException: this install's metadata has no entry point for it
        papermill_engines.register(ENGINE_NAME, WarmKernelEngine)
