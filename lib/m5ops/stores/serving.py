"""Serving state in ``runs.db``: who is in production (with its history) and the serving policy.

``production``: one row per change of the production model, never updated: the newest row
names the model that serves (its version is that model's current version in the registry, so
a new version accepted by the gate serves at once, and a rollback needs no second record).
No row yet means no promotion has happened: production follows the best backtest
(``pipeline.serving``). A row and its audit entry are written in one transaction.

``settings``: the serving policy, per workspace (scope ``""``) with per-model overrides of the
gate tolerance (scope = the model's name). Unset keys take the defaults of ``ServingSettings``.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace

from filelock import FileLock, Timeout

from m5ops.errors import ParameterError, StoreError
from m5ops.stores.audit import AuditEntry, insert
from m5ops.stores.clock import utc_now
from m5ops.stores.rundb import RunDbStore

PROMOTION_MODES = ("auto", "manual")
WORKSPACE_SCOPE = ""
LOCK_NAME = "serving.lock"  # beside runs.db: one serving change at a time, whoever makes it
LOCK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ProductionChange:
    """One row of the production history: from ``at`` (day ``sim_day``) ``model`` serves."""

    id: int
    model: str
    version: str
    at: str
    sim_day: int
    actor: str
    reason: str


def _fraction(low: float, high: float, what: str):
    """A checker of a fraction in [low, high], accepting ``0.1`` or ``'10%'``."""
    def check(value) -> float:
        text = str(value).strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ParameterError(f"{what} must be a number such as 0.10 or 10%, got {value!r}") from None
        if not text.endswith("%") and number > 1 and high <= 1:
            raise ParameterError(f"{what} {value!r} reads as {number:.0%}; write 10% or 0.10 for ten percent")
        if not low <= number <= high:
            raise ParameterError(f"{what} must lie in {low:.0%}..{high:.0%}, got {value!r}")
        return number
    return check


def _count(low: int, high: int, what: str):
    """A checker of a whole number in [low, high]."""
    def check(value) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ParameterError(f"{what} must be a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise ParameterError(f"{what} must lie in {low}..{high}, got {value!r}")
        return number
    return check


def _mode(value) -> str:
    if value not in PROMOTION_MODES:
        raise ParameterError(f"promotion must be 'auto' or 'manual', got {value!r}")
    return value


# key -> checker: the one place a setting's range is stated
CHECKS = {
    "gate_tolerance": _fraction(0.0, 1.0, "the gate tolerance"),
    "promotion": _mode,
    "promotion_windows": _count(1, 365, "promotion windows"),
    "promotion_margin": _fraction(0.0, 0.99, "the promotion margin"),
    "keep_versions": _count(1, 1000, "versions kept per model"),
}
MODEL_KEYS = ("gate_tolerance",)  # the settings a model may override


@dataclass(frozen=True)
class ServingSettings:
    """The serving policy of one workspace."""

    gate_tolerance: float = 0.10  # a new version may be this much worse than the current one
    promotion: str = "auto"  # auto: the rule promotes; manual: only `m5ops promote` does
    promotion_windows: int = 7  # complete 28-day issue windows the rule compares
    promotion_margin: float = 0.05  # how much better a challenger's live WRMSSE must be
    keep_versions: int = 5  # newest versions per model whose artifacts are kept
    gate_overrides: dict = field(default_factory=dict)  # model -> its own gate tolerance

    def gate_for(self, model: str) -> float:
        """The gate tolerance that applies to ``model``."""
        return self.gate_overrides.get(model, self.gate_tolerance)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_settings(changes: dict, model: str | None = None) -> dict:
    """Validated values of ``changes``; ParameterError naming a bad key or value and the range."""
    allowed = MODEL_KEYS if model else tuple(CHECKS)
    checked = {}
    for key, value in changes.items():
        if key not in allowed:
            where = f"for model {model!r}" if model else "for the workspace"
            raise ParameterError(f"there is no setting {key!r} {where}; settable: {', '.join(allowed)}")
        checked[key] = None if value is None else CHECKS[key](value)
    return checked


class ServingStore(RunDbStore):
    """The ``production`` and ``settings`` tables of the ``runs.db`` at ``path``."""

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the serving lock: a decision reads the state it changes, and nobody changes it meanwhile.

        Every change of production or of a current version (the gate, promote, rollback, a
        deletion, the rule) takes it, from the CLI, the dashboard or the runner alike.
        """
        lock = _lock_for(self.db.path.with_name(LOCK_NAME))
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(f"another serving change held {lock.lock_file} for {LOCK_TIMEOUT_S:.0f} s;"
                             " retry when it is done (the lock is freed when its holder exits)") from None
        try:
            yield
        finally:
            lock.release()

    # -- production -----------------------------------------------------------------------
    def latest(self) -> ProductionChange | None:
        """The newest production row (None before the first promotion)."""
        found = self.history(limit=1)
        return found[0] if found else None

    def history(self, limit: int | None = None) -> list[ProductionChange]:
        """Production rows, newest first."""
        tail = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self.db.read("SELECT id, model, version, at, sim_day, actor, reason FROM production"
                            f" ORDER BY id DESC{tail}")
        return [ProductionChange(**dict(row)) for row in rows]

    def change_production(self, model: str, version: str, entry: AuditEntry) -> AuditEntry:
        """From now on ``model`` serves: its row and its audit entry in one transaction; the entry as stored."""
        at = entry.at or utc_now()
        with self.db.connect(write=True) as conn:
            conn.execute("INSERT INTO production (model, version, at, sim_day, actor, reason) VALUES (?, ?, ?, ?, ?, ?)",
                         (model, version, at, int(entry.sim_day), entry.actor, entry.reason))
            return insert(conn, replace(entry, at=at))

    # -- settings -------------------------------------------------------------------------
    def settings(self) -> ServingSettings:
        """The policy: stored values over the defaults, with every model's override."""
        stored = ServingSettings()
        overrides = {}
        for row in self.db.read("SELECT scope, key, value FROM settings"):
            value = json.loads(row["value"])
            if row["scope"] == WORKSPACE_SCOPE and row["key"] in CHECKS:
                stored = replace(stored, **{row["key"]: value})
            elif row["key"] == "gate_tolerance":
                overrides[row["scope"]] = value
        return replace(stored, gate_overrides=overrides)

    def set(self, changes: dict, model: str | None = None) -> ServingSettings:
        """Store validated ``changes`` (a None value clears a model's override); the policy after."""
        checked = check_settings(changes, model)
        scope = model or WORKSPACE_SCOPE
        with self.db.connect(write=True) as conn:
            for key, value in checked.items():
                _store_setting(conn, scope, key, value)
        return self.settings()

    def clear_model(self, model: str) -> None:
        """Forget a model's overrides (it was deleted: a new model of that name starts afresh)."""
        with self.db.connect(write=True) as conn:
            conn.execute("DELETE FROM settings WHERE scope = ?", (model,))

    def fingerprint(self) -> tuple:
        """A key that changes whenever production or the settings change."""
        row = self.db.read("SELECT (SELECT coalesce(max(id), 0) FROM production),"
                           " (SELECT coalesce(max(updated_at), '') FROM settings)")[0]
        return tuple(row)


_LOCKS: dict[str, FileLock] = {}


def _lock_for(path: os.PathLike) -> FileLock:
    """One lock object per file in this process: reentrant in a thread, exclusive between threads."""
    key = os.fspath(path)
    if key not in _LOCKS:
        _LOCKS[key] = FileLock(key, timeout=LOCK_TIMEOUT_S, thread_local=True)
    return _LOCKS[key]


def _store_setting(conn: sqlite3.Connection, scope: str, key: str, value) -> None:
    """Write one setting (None removes it) inside the caller's transaction."""
    if value is None:
        conn.execute("DELETE FROM settings WHERE scope = ? AND key = ?", (scope, key))
    else:
        conn.execute("INSERT OR REPLACE INTO settings (scope, key, value, updated_at) VALUES (?, ?, ?, ?)",
                     (scope, key, json.dumps(value), utc_now()))
