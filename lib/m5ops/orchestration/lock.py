"""One driver per workspace: ``runner.lock``, and the task processes a killed driver left behind.

The lock is a POSIX record lock (``fcntl.lockf``) on ``<home>/runner.lock``: the kernel drops it
when its holder exits, even on SIGKILL, and forked task processes do not inherit it (a
``flock`` would stay held by an orphaned task). The file names its holder (pid, host, what it
is, since when, and a token), so a second runner can say who is in the way.

Every process a driver starts (forked task, notebook kernel) inherits ``M5OPS_RUNNER_TOKEN``
from its environment. If a driver is SIGKILLed, its tasks live on as orphans that could still
write a model version; the next driver finds them by that token and kills them before it
marks their runs interrupted.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import socket

import psutil

from m5ops.errors import RunnerError
from m5ops.orchestration.processes import kill_all, kill_tree
from m5ops.stores.clock import utc_now
from m5ops.stores.layout import Workspace

log = logging.getLogger("m5ops.runner")
TOKEN_ENV = "M5OPS_RUNNER_TOKEN"


class RunnerLock:
    """``runner.lock`` of a workspace, held by the one process that drives its ticks."""

    def __init__(self, workspace: Workspace, what: str = "m5ops runner"):
        self.workspace = workspace
        self.what = what
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.previous: dict = {}  # what the file said before we took it: the last holder
        self._fd: int | None = None

    @property
    def path(self):
        return self.workspace.lock_path

    def acquire(self) -> "RunnerLock":
        """Take the lock or raise RunnerError naming the holder; remembers the previous holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise RunnerError(self._held_message(read_holder(self.workspace))) from None
        self._fd = fd
        self.previous = _decode(os.pread(fd, 65536, 0))
        self._write({"pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
                     "started_at": utc_now(), "token": self.token})
        log.info("took %s (previous holder: %s)", self.path, _who(self.previous) or "none")
        return self

    def release(self) -> None:
        """Note the clean stop in the file, then let go of the lock."""
        if self._fd is None:
            return
        self._write({**_decode(os.pread(self._fd, 65536, 0)), "stopped_at": utc_now()})
        os.close(self._fd)  # closing drops the POSIX lock
        self._fd = None

    def __enter__(self) -> "RunnerLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def previous_was_killed(self) -> bool:
        """Whether the last holder ended without a clean stop (crash, SIGKILL, power loss)."""
        return bool(self.previous) and "stopped_at" not in self.previous

    def _write(self, holder: dict) -> None:
        """Replace the file's content with ``holder`` (we hold the lock)."""
        data = (json.dumps(holder) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def _held_message(self, holder: dict) -> str:
        """Who holds the workspace, and what to do about it."""
        home = self.workspace.home
        if not holder:
            return f"another m5ops process holds {self.path} (it is starting up); retry in a moment"
        return (f"{holder.get('what', 'm5ops runner')} (pid {holder.get('pid')} on {holder.get('host')},"
                f" since {holder.get('started_at')}) already drives the workspace {home}: stop it first"
                f" (kill {holder.get('pid')}), or send it requests with --queue"
                f" (e.g. 'm5ops --home {home} tick --queue')")


def read_holder(workspace: Workspace) -> dict:
    """What ``runner.lock`` says about its holder (or last holder); {} if nothing."""
    try:
        return _decode(workspace.lock_path.read_bytes())
    except FileNotFoundError:
        return {}


def _decode(raw: bytes) -> dict:
    """The holder record in the lock file, {} if empty or unreadable (a holder mid-write)."""
    try:
        value = json.loads(raw.decode() or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _who(holder: dict) -> str:
    """'m5ops runner pid 123' for log lines."""
    return f"{holder.get('what')} pid {holder.get('pid')}" if holder else ""


def kill_leftovers(token: str | None) -> list[int]:
    """SIGKILL every process still carrying ``token`` (tasks of a killed driver); returns their pids."""
    if not token:
        return []
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.environ().get(TOKEN_ENV) == token:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return kill_all(found)


def kill_children() -> list[int]:
    """SIGKILL the task processes this process started, with their kernels; returns their pids."""
    children = psutil.Process().children()
    for child in children:
        kill_tree(child.pid)
    return [child.pid for child in children]
