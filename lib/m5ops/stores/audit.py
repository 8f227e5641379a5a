"""The audit log in ``runs.db``: every change of production or of a model's current version.

One row per change, never updated or deleted: when (wall clock and simulated day), who
(``actor``: schedule, rule, cli, dashboard), what (``action`` on ``model``/``version``, and what
served or was current before), why (``reason``, a sentence) and on what evidence (the scores
compared, as JSON). ``insert`` takes an open write connection so that a change of production
and its entry commit in one transaction (``stores.serving``).
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, replace

from m5ops.errors import RegistryError, StoreError
from m5ops.stores.clock import utc_now
from m5ops.stores.registry_format import plain
from m5ops.stores.rundb import ACTORS, AUDIT_ACTIONS, RunDbStore

_COLUMNS = ("at", "sim_day", "actor", "action", "model", "version", "previous_model", "previous_version",
            "reason", "evidence")


@dataclass(frozen=True)
class AuditEntry:
    """One change, as recorded."""

    sim_day: int
    actor: str
    action: str
    model: str
    version: str | None
    reason: str
    evidence: dict = field(default_factory=dict)
    previous_model: str | None = None
    previous_version: str | None = None
    at: str = ""
    id: int | None = None

    def __post_init__(self):
        """Refuse an entry the log could not explain later."""
        if self.actor not in ACTORS:
            raise StoreError(f"audit actor {self.actor!r} is not one of {', '.join(ACTORS)}")
        if self.action not in AUDIT_ACTIONS:
            raise StoreError(f"audit action {self.action!r} is not one of {', '.join(AUDIT_ACTIONS)}")
        if not (isinstance(self.reason, str) and self.reason.strip()):
            raise StoreError("an audit entry needs a reason: a sentence saying why the change was made")

    def as_dict(self) -> dict:
        """Plain JSON-ready dict (``m5ops history --json``)."""
        return asdict(self)


def insert(conn: sqlite3.Connection, entry: AuditEntry) -> AuditEntry:
    """Append ``entry`` inside the caller's write transaction; returns it as stored (id, time)."""
    try:
        stored = replace(entry, at=entry.at or utc_now(), evidence=plain(entry.evidence))
    except RegistryError as exc:  # plain() speaks of the registry; say where it was meant to go
        raise StoreError(f"the evidence of an audit entry cannot be stored: {exc}") from None
    values = {**stored.as_dict(), "evidence": json.dumps(stored.evidence, sort_keys=True)}
    cursor = conn.execute(f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                          [values[column] for column in _COLUMNS])
    return replace(stored, id=int(cursor.lastrowid))


def _entry(row: sqlite3.Row) -> AuditEntry:
    """A stored row as an entry, its evidence decoded."""
    values = dict(row)
    values["evidence"] = json.loads(values["evidence"] or "{}")
    return AuditEntry(**values)


class AuditLog(RunDbStore):
    """The ``audit`` table of the ``runs.db`` at ``path``."""

    def record(self, entry: AuditEntry) -> AuditEntry:
        """Append one entry in its own transaction; returns it as stored."""
        with self.db.connect(write=True) as conn:
            return insert(conn, entry)

    def entries(self, limit: int | None = None, model: str | None = None,
                actions: tuple[str, ...] | None = None) -> list[AuditEntry]:
        """Entries newest first: all, the last ``limit``, of one model, or of some actions."""
        clauses, args = ["1"], []
        if model is not None:
            clauses.append("model = ?")
            args.append(model)
        if actions:
            clauses.append(f"action IN ({', '.join('?' * len(actions))})")
            args.extend(actions)
        tail = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self.db.read(f"SELECT id, {', '.join(_COLUMNS)} FROM audit WHERE {' AND '.join(clauses)}"
                            f" ORDER BY id DESC{tail}", args)
        return [_entry(row) for row in rows]

    def last(self, **where) -> AuditEntry | None:
        """The newest entry matching ``entries(**where)``, or None."""
        found = self.entries(limit=1, **where)
        return found[0] if found else None

    def fingerprint(self) -> int:
        """The newest entry's id (0 when empty): changes whenever an entry is added."""
        return int(self.db.read("SELECT coalesce(max(id), 0) FROM audit")[0][0])
