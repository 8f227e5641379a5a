"""Alerts in ``runs.db``: each raised once while its condition lasts, cleared when it ends.

A condition has a stable ``key`` ("failed-run:train:lightgbm"). ``sync`` takes what holds now
for some kinds of condition: an alert is raised for each key not already open, and the open
alerts of those kinds whose key no longer holds are cleared. Kinds not evaluated are left alone.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from m5ops.stores.clock import utc_now
from m5ops.stores.rundb import RunDbStore

KINDS = ("degradation", "drift", "failed-run", "overdue-run", "runner-down")
_COLUMNS = "id, key, kind, model, message, evidence, sim_day, raised_at, cleared_at, cleared_why"


@dataclass(frozen=True)
class Condition:
    """What holds now and deserves an alert."""

    key: str
    kind: str
    message: str
    model: str | None = None
    evidence: dict = field(default_factory=dict)
    sim_day: int | None = None


def _alert(row) -> dict:
    """An alerts row as a plain dict, evidence decoded, with its state."""
    alert = dict(row)
    alert["evidence"] = json.loads(alert["evidence"] or "{}")
    alert["state"] = "open" if alert["cleared_at"] is None else "cleared"
    return alert


class AlertStore(RunDbStore):
    """The ``alerts`` table of the ``runs.db`` at ``path``."""

    def sync(self, holding: Iterable[Condition], kinds: Iterable[str]) -> tuple[list[dict], list[dict]]:
        """Raise what newly holds, clear what no longer does (of ``kinds``); (raised, cleared)."""
        kinds, holding = tuple(kinds), {c.key: c for c in holding}
        now = utc_now()
        with self.db.connect(write=True) as conn:
            open_rows = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE cleared_at IS NULL AND kind IN"
                                     f" ({', '.join('?' * len(kinds))})", kinds).fetchall() if kinds else []
            open_keys = {row["key"] for row in open_rows}
            cleared = [row for row in open_rows if row["key"] not in holding]
            for row in cleared:
                conn.execute("UPDATE alerts SET cleared_at = ?, cleared_why = ? WHERE id = ?",
                             (now, "the condition no longer holds", row["id"]))
            raised = []
            for key, c in holding.items():
                if key in open_keys:
                    continue
                raised.append(conn.execute(
                    f"INSERT INTO alerts (key, kind, model, message, evidence, sim_day, raised_at)"
                    f" VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
                    (key, c.kind, c.model, c.message, json.dumps(c.evidence, default=str), c.sim_day, now)).fetchone())
        return [_alert(row) for row in raised], [{**_alert(row), "cleared_at": now, "state": "cleared"} for row in cleared]

    def open(self, model: str | None = None) -> list[dict]:
        """Alerts whose condition still holds, oldest first."""
        where, args = ("AND model = ?", [model]) if model else ("", [])
        return [_alert(r) for r in self.db.read(f"SELECT {_COLUMNS} FROM alerts WHERE cleared_at IS NULL {where}"
                                                " ORDER BY id", args)]

    def history(self, limit: int = 50) -> list[dict]:
        """The newest alerts first, open and cleared."""
        return [_alert(r) for r in self.db.read(f"SELECT {_COLUMNS} FROM alerts ORDER BY id DESC LIMIT ?", [int(limit)])]
