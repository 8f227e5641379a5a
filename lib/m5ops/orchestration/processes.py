"""Ending processes: a whole process tree at once, and a task's life tied to its parent's."""
from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

import psutil

KILL_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


def kill_tree(pid: int, grace_s: float = KILL_GRACE_S) -> list[int]:
    """SIGKILL a process and every process below it (a task's kernel), if any is left; their pids."""
    try:
        root = psutil.Process(pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return []
    return kill_all(tree, grace_s)


def kill_all(processes: list[psutil.Process], grace_s: float = KILL_GRACE_S) -> list[int]:
    """SIGKILL every one of ``processes`` and wait for them; their pids."""
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=grace_s)
    return [process.pid for process in processes]


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; whether it could.

    A runner killed with SIGKILL cannot stop its task processes itself: with this, the kernel
    does it at once, so a task can never finish and register a version for a run that the
    next runner records as interrupted. (Linux only; elsewhere the next runner's
    ``kill_leftovers`` remains the fallback.)
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
