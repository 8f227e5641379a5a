"""The runner's heartbeat and its small persisted state (last tick, schedule) in ``runs.db``."""
from __future__ import annotations

import json
import os
import socket
from typing import Any

from m5ops.stores.clock import age_s, utc_now
from m5ops.stores.rundb import RunDbStore

ALIVE_WITHIN_S = 15.0
_UNREAD = object()  # "not read yet", where None means "read: there is none"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


class RunnerState(RunDbStore):
    """The ``heartbeat`` and ``runner_state`` tables of the ``runs.db`` at ``path``."""

    def beat(self, pid: int, current_run: str | None = None) -> None:
        """The runner says it is alive (call every few seconds); keeps started_at per runner."""
        now = utc_now()
        with self.db.connect(write=True) as conn:
            conn.execute(
                "INSERT INTO heartbeat (id, pid, host, started_at, beat_at, current_run)"
                " VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " started_at = CASE WHEN pid = excluded.pid AND host = excluded.host"
                " THEN started_at ELSE excluded.started_at END,"
                " pid = excluded.pid, host = excluded.host, beat_at = excluded.beat_at,"
                " current_run = excluded.current_run",
                (pid, socket.gethostname(), now, now, current_run))

    def heartbeat(self) -> dict | None:
        """The runner's last heartbeat plus ``age_s`` (seconds since it), or None if none yet."""
        rows = self.db.read("SELECT * FROM heartbeat WHERE id = 1")
        if not rows:
            return None
        beat = dict(rows[0])
        beat["age_s"] = age_s(beat["beat_at"])
        return beat

    def alive(self, max_age_s: float = ALIVE_WITHIN_S, beat: dict | None | object = _UNREAD) -> bool:
        """Whether a runner beat within ``max_age_s`` (and, on this host, its process exists).

        ``beat``: the ``heartbeat()`` the caller already read, None included (else it is read here).
        """
        if beat is _UNREAD:
            beat = self.heartbeat()
        if beat is None or beat["age_s"] > max_age_s:
            return False
        # a runner killed a moment ago still has a fresh beat; on this host, ask the OS
        return beat["host"] != socket.gethostname() or pid_alive(beat["pid"])

    def clear_heartbeat(self, pid: int) -> bool:
        """Remove the heartbeat at a clean runner stop, if it is still ``pid``'s; returns whether."""
        with self.db.connect(write=True) as conn:
            return conn.execute("DELETE FROM heartbeat WHERE id = 1 AND pid = ?", (pid,)).rowcount > 0

    def state(self) -> dict[str, Any]:
        """The runner's persisted state by key (last scheduled tick, schedule, ...)."""
        return {row["key"]: json.loads(row["value"]) for row in self.db.read("SELECT * FROM runner_state")}

    def set_state(self, **values: Any) -> None:
        """Store runner state values (JSON-able) by key, all in one transaction."""
        now = utc_now()
        with self.db.connect(write=True) as conn:
            conn.executemany("INSERT OR REPLACE INTO runner_state (key, value, updated_at) VALUES (?, ?, ?)",
                             [(key, json.dumps(value, default=str), now) for key, value in values.items()])
