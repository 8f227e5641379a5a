"""Ending processes: a whole process tree at once, and a task's life tied to its parent's."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

import psutil

KILL_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


def kill_tree(pid: int, grace_s: float = KILL_GRACE_S) -> list[int]:
    """SIGKILL a process and every process below it (a task's kernel), if any is left; their pids."""
    return wait_gone(signal_tree(pid), grace_s)


def signal_tree(pid: int) -> list[psutil.Process]:
    """SIGKILL a process and every process below it, without waiting for them to go; the processes signalled."""
    try:
        root = psutil.Process(pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return []
    for process in tree:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return tree


def kill_all(processes: list[psutil.Process], grace_s: float = KILL_GRACE_S) -> list[int]:
    """SIGKILL every one of ``processes`` and wait for them; their pids."""
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return wait_gone(processes, grace_s)


def wait_gone(processes: list[psutil.Process], grace_s: float = KILL_GRACE_S) -> list[int]:
    """Wait up to ``grace_s`` for signalled ``processes`` to go (reaping those that are our children); their pids."""
    psutil.wait_procs(processes, timeout=grace_s)
    return [process.pid for process in processes]


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; whether it could.

    A runner killed with SIGKILL cannot stop its task processes itself: with this, the kernel
    does it at once, so a task can never finish and register a version for a run that the
    next runner records as interrupted. (Linux only; elsewhere the next runner's
    ``kill_leftovers`` remains the fallback.) "Parent" is the thread that started the process.
    """
    return _PRCTL is not None and _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def dies_with_this_thread() -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child is SIGKILLed when the calling thread ends.

    Armed in the child between fork and exec, so that there is no moment, however loaded the
    machine, when the child runs and its parent's death would go unnoticed; a child whose
    parent died before it was armed exits at once. (A no-op off Linux.)
    """
    parent = os.getpid()

    def arm() -> None:
        if die_with_parent() and os.getppid() != parent:
            os._exit(1)
    return arm


def _find_prctl():
    """libc's ``prctl`` from the running program's own symbols (no ``ldconfig`` run), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()  # looked up once, here: a forked child or a child about to exec only calls it
