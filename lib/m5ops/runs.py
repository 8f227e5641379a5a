"""Run history, the manual-request queue, metrics history, the runner heartbeat and state: ``runs.db``.

SQLite in WAL mode, so the dashboard reads while the runner writes. Every call opens its own
short connection with a 10 s busy timeout and closes it: safe across processes and threads,
nothing held open between calls. Every write is one ``BEGIN IMMEDIATE`` transaction, so a
claim (find the oldest queued run, flip it to running) cannot interleave with another claim.

A run moves ``queued -> running -> succeeded | failed | interrupted | cancelled`` (a queued run
may also be cancelled or failed directly). While it runs, its task reports how far it got
(``progress`` from 0 to 1 and a short note). Times are ISO 8601 UTC with milliseconds.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from m5ops.errors import RunError

TRIGGERS = ("schedule", "manual", "backfill")
STATUSES = ("queued", "running", "succeeded", "failed", "interrupted", "cancelled")
FINISHED = ("succeeded", "failed", "interrupted", "cancelled")
OPEN = ("queued", "running")
METRIC_COLUMNS = ["sim_day", "sim_date", "model", "version", "metric", "value",
                  "window_start", "window_end", "run_id"]
BUSY_TIMEOUT_S = 10.0
_UNREAD = object()  # "not read yet", where None means "read: there is none"
SCHEMA_VERSION = 2  # 2: runs.progress and runs.progress_note
_RUN_COLUMNS = ("id, task, model, params, \"trigger\", status, sim_day, created_at, started_at,"
                " finished_at, output, error, attempt, pid, progress, progress_note")
# columns added after version 1, with their types: added to an older file when it is opened
_ADDED_RUN_COLUMNS = {"progress": "REAL", "progress_note": "TEXT"}


def _sql_list(values: Iterable[str]) -> str:
    """SQL literal list for a CHECK constraint: ('a', 'b')."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    model TEXT,
    params TEXT NOT NULL DEFAULT '{{}}',
    "trigger" TEXT NOT NULL CHECK ("trigger" IN {_sql_list(TRIGGERS)}),
    status TEXT NOT NULL CHECK (status IN {_sql_list(STATUSES)}),
    sim_day INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    output TEXT,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    pid INTEGER,
    progress REAL,
    progress_note TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (model, created_at);
CREATE TABLE IF NOT EXISTS metrics (
    sim_day INTEGER NOT NULL,
    sim_date TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    window_start INTEGER,
    window_end INTEGER,
    run_id TEXT,
    PRIMARY KEY (sim_day, model, version, metric)
);
CREATE TABLE IF NOT EXISTS heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    beat_at TEXT NOT NULL,
    current_run TEXT
);
CREATE TABLE IF NOT EXISTS runner_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_time(text: str | None) -> datetime | None:
    """A time stored by ``utc_now`` (or any ISO 8601 text) as an aware datetime; None stays None."""
    return datetime.fromisoformat(text) if text else None


def new_run_id() -> str:
    """A short, time-sortable, practically unique id: 20261126T101500-3f9a2c."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def run_label(run: dict) -> str:
    """``<id> <task>[-<model>]``: how ``m5ops status`` and the dashboard name a run."""
    return f"{run['id']} {run['task']}{'-' + run['model'] if run.get('model') else ''}"


def _check_choice(what: str, value: Any, allowed: Iterable[str]) -> None:
    """RunError quoting the allowed values if ``value`` is not one of them."""
    if value not in allowed:
        raise RunError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def _to_json(params: dict | None) -> str:
    """Encode run parameters; numpy values become plain numbers, other objects strings."""
    return json.dumps(params or {}, sort_keys=True,
                      default=lambda obj: obj.tolist() if hasattr(obj, "tolist") else str(obj))


def _run_dict(row: sqlite3.Row | None) -> dict | None:
    """A runs row as a plain dict, params decoded."""
    if row is None:
        return None
    run = dict(row)
    run["params"] = json.loads(run["params"]) if run["params"] else {}
    return run


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


class RunStore:
    """The SQLite file at ``path`` (created with its tables on first use)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise RunError(f"cannot open {self.path}: folder {self.path.parent} does not exist;"
                           " create the workspace first (`m5ops init`)")
        self._create_schema()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    def _error(self, err: sqlite3.Error) -> RunError:
        """Turn an SQLite error into one that names the file and what to do."""
        return RunError(
            f"run store {self.path}: {err}. If it is locked, another process held it over"
            f" {BUSY_TIMEOUT_S:.0f} s: retry; if it is not a database or is malformed, move it"
            " away (a new empty one is created) or restore it from a backup")

    @contextlib.contextmanager
    def _connection(self, write: bool) -> Iterator[sqlite3.Connection]:
        """A fresh connection; for ``write``, inside one BEGIN IMMEDIATE transaction."""
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as err:
            raise self._error(err) from None
        conn.row_factory = sqlite3.Row
        try:
            # WAL + NORMAL: no fsync per commit; a power cut may lose the last commits, never
            # corrupt the file (SQLite's recommended pairing), and the write lock is held briefly
            conn.execute("PRAGMA synchronous=NORMAL")
            if write:
                conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading
            yield conn
            if write:
                conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise self._error(err) from None
        finally:
            conn.close()  # closing rolls back a transaction an error left open

    def _create_schema(self) -> None:
        """WAL mode, the tables (created, or an older file's upgraded), and a refusal of a newer m5ops's file."""
        with self._connection(write=False) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: set once, kept in the file
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RunError(f"{self.path} has schema version {version}; this m5ops knows"
                               f" {SCHEMA_VERSION}: upgrade m5ops")
            if version == SCHEMA_VERSION:
                return
            conn.execute("BEGIN IMMEDIATE")  # one process creates or upgrades; the others wait, then see it done
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
            present = {row["name"] for row in conn.execute("PRAGMA table_info(runs)")}
            for column, kind in _ADDED_RUN_COLUMNS.items():
                if column not in present:
                    conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")

    def _change_run(self, run_id: str, allowed: Iterable[str], sets: dict, verb: str) -> dict:
        """Set columns of a run in one of the ``allowed`` states; RunError saying why not otherwise."""
        allowed = tuple(allowed)
        assignments = ", ".join(f"{column} = ?" for column in sets)
        sql = (f"UPDATE runs SET {assignments} WHERE id = ? AND status IN"
               f" ({', '.join('?' * len(allowed))}) RETURNING {_RUN_COLUMNS}")
        with self._connection(write=True) as conn:
            row = conn.execute(sql, [*sets.values(), run_id, *allowed]).fetchone()
            current = None if row else conn.execute(
                "SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None and current is None:
            raise RunError(f"no run with id {run_id!r}; list runs with RunStore.runs()")
        if row is None:
            raise RunError(f"run {run_id} is {current['status']}; only a {' or '.join(allowed)}"
                           f" run can be {verb}")
        return _run_dict(row)

    def new_run(self, task: str, *, model: str | None = None, params: dict | None = None,
                trigger: str, status: str = "running", sim_day: int | None = None,
                attempt: int = 1) -> str:
        """Record a run, running now (this pid) or queued for later, and return its id."""
        _check_choice("trigger", trigger, TRIGGERS)
        _check_choice("status", status, OPEN)
        now = utc_now()
        started, pid = (now, os.getpid()) if status == "running" else (None, None)
        values = [task, model, _to_json(params), trigger, status,
                  None if sim_day is None else int(sim_day), now, started, attempt, pid]
        for _ in range(5):  # a same-second id clash (3 random bytes) just draws again
            run_id = new_run_id()
            with self._connection(write=True) as conn:
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO runs (id, task, model, params, \"trigger\", status,"
                    " sim_day, created_at, started_at, attempt, pid)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [run_id, *values]).rowcount
            if inserted:
                return run_id
        raise RunError("could not draw an unused run id in 5 tries; retry")

    def enqueue(self, task: str, model: str | None = None, params: dict | None = None) -> str:
        """Queue a manual request (the runner starts it); returns its id."""
        return self.new_run(task, model=model, params=params, trigger="manual", status="queued")

    def claim_next_queued(self, exclude_models: Iterable[str] = (), pid: int | None = None,
                          exclude_tasks: Iterable[str] = ()) -> dict | None:
        """Atomically flip the oldest queued run to running and return it; None if none is left.

        Runs whose model is in ``exclude_models`` (say, one already training) or whose task is
        in ``exclude_tasks`` are skipped and stay queued. Two claimers never get the same run:
        the select and the update are one statement inside BEGIN IMMEDIATE.
        """
        excluded, tasks = sorted(set(exclude_models)), sorted(set(exclude_tasks))
        skip = f"AND (model IS NULL OR model NOT IN ({', '.join('?' * len(excluded))}))" if excluded else ""
        skip += f" AND task NOT IN ({', '.join('?' * len(tasks))})" if tasks else ""
        sql = (f"UPDATE runs SET status = 'running', started_at = ?, pid = ? WHERE id ="
               f" (SELECT id FROM runs WHERE status = 'queued' {skip} ORDER BY created_at, rowid LIMIT 1)"
               f" RETURNING {_RUN_COLUMNS}")
        with self._connection(write=True) as conn:
            row = conn.execute(sql, [utc_now(), pid or os.getpid(), *excluded, *tasks]).fetchone()
        return _run_dict(row)

    def start(self, run_id: str, pid: int | None = None) -> dict:
        """Mark a queued run as running (started now, by ``pid`` or this process)."""
        sets = {"status": "running", "started_at": utc_now(), "pid": pid or os.getpid()}
        return self._change_run(run_id, ("queued",), sets, "started")

    def finish(self, run_id: str, status: str, *, output: str | None = None,
               error: str | None = None) -> dict:
        """Close a queued or running run as succeeded, failed, interrupted or cancelled."""
        _check_choice("final status", status, FINISHED)
        sets = {"status": status, "finished_at": utc_now(), "error": error}
        if output is not None:
            sets["output"] = str(output)  # else keep what set_output recorded
        return self._change_run(run_id, OPEN, sets, f"marked {status}")

    def set_output(self, run_id: str, path: str | os.PathLike) -> dict:
        """Record the executed notebook's path (known as soon as the run starts)."""
        return self._change_run(run_id, STATUSES, {"output": str(path)}, "given an output")

    def set_progress(self, run_id: str, fraction: float, note: str = "") -> bool:
        """Record how far a running run got (``fraction`` from 0 to 1, clipped) and what it does now.

        False, and nothing written, when the run is not running (any more): a task that outlived
        its run, say after the runner marked it interrupted, must not fail on its progress report.
        """
        fraction = float(fraction)
        if math.isnan(fraction):
            raise RunError(f"progress of run {run_id} must be a number from 0 to 1, got NaN")
        sql = "UPDATE runs SET progress = ?, progress_note = ? WHERE id = ? AND status = 'running'"
        with self._connection(write=True) as conn:
            return conn.execute(sql, [min(1.0, max(0.0, fraction)), note[:200], run_id]).rowcount == 1

    def _close_many(self, where: str, args: list, status: str, error: str) -> int:
        """Close every open run matching ``where`` with ``status``; returns how many."""
        sql = f"UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE {where}"
        with self._connection(write=True) as conn:
            return conn.execute(sql, [status, utc_now(), error, *args]).rowcount

    def cancel_queued_for_model(self, model: str, reason: str | None = None) -> int:
        """Cancel every queued run of ``model`` (it was deleted or paused); returns how many."""
        reason = reason or f"cancelled: queued requests for model {model!r} were withdrawn"
        return self._close_many("status = 'queued' AND model = ?", [model], "cancelled", reason)

    def mark_interrupted(self, reason: str | None = None) -> int:
        """Close every running run as interrupted (call at runner start); returns how many."""
        reason = reason or "interrupted: the runner stopped before this run finished"
        return self._close_many("status = 'running'", [], "interrupted", reason)

    def _select(self, where: str = "1", args: Iterable = (), order: str = "DESC",
                limit: int | None = None) -> list[dict]:
        """Runs matching ``where``, by creation time."""
        sql = (f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where}"
               f" ORDER BY created_at {order}, rowid {order}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._connection(write=False) as conn:
            return [_run_dict(row) for row in conn.execute(sql, list(args))]

    def get(self, run_id: str) -> dict:
        """One run as a dict; RunError if there is no such run."""
        found = self._select("id = ?", [run_id])
        if not found:
            raise RunError(f"no run with id {run_id!r}; list runs with RunStore.runs()")
        return found[0]

    def runs(self, limit: int | None = 50, model: str | None = None,
             status: str | Iterable[str] | None = None, task: str | None = None) -> list[dict]:
        """The newest runs first, optionally of one model, status (or several) or task."""
        clauses, args = ["1"], []
        if model is not None:
            clauses.append("model = ?")
            args.append(model)
        if task is not None:
            clauses.append("task = ?")
            args.append(task)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        return self._select(" AND ".join(clauses), args, limit=limit)

    def queued(self) -> list[dict]:
        """Queued runs, oldest (next to start) first."""
        return self._select("status = 'queued'", order="ASC")

    def running(self) -> list[dict]:
        """Running runs, oldest first."""
        return self._select("status = 'running'", order="ASC")

    def record_metrics(self, sim_day: int, sim_date: str, model: str, version: str,
                       values: dict[str, float], window: tuple[int, int],
                       run_id: str | None = None) -> None:
        """Store one evaluation; evaluating the same day and version again replaces it whole."""
        start, end = (int(day) for day in window)
        rows = [(int(sim_day), str(sim_date), model, version, name,
                 None if value is None else float(value), start, end, run_id)
                for name, value in values.items()]
        with self._connection(write=True) as conn:
            # delete first so a re-evaluation with fewer metrics leaves no stale ones behind
            conn.execute("DELETE FROM metrics WHERE sim_day = ? AND model = ? AND version = ?",
                         (int(sim_day), model, version))
            conn.executemany(f"INSERT OR REPLACE INTO metrics ({', '.join(METRIC_COLUMNS)})"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def metrics(self, model: str | None = None) -> pd.DataFrame:
        """The metrics history (one row per day, model, version, metric), oldest day first."""
        where, args = ("WHERE model = ?", [model]) if model is not None else ("", [])
        sql = (f"SELECT {', '.join(METRIC_COLUMNS)} FROM metrics {where}"
               " ORDER BY sim_day, model, version, metric")
        with self._connection(write=False) as conn:
            rows = [tuple(row) for row in conn.execute(sql, args)]
        frame = pd.DataFrame.from_records(rows, columns=METRIC_COLUMNS)
        return frame.astype({"sim_day": "int64", "value": "float64",
                             "window_start": "Int64", "window_end": "Int64"})

    def beat(self, pid: int, current_run: str | None = None) -> None:
        """The runner says it is alive (call every few seconds); keeps started_at per runner."""
        now = utc_now()
        with self._connection(write=True) as conn:
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
        with self._connection(write=False) as conn:
            row = conn.execute("SELECT * FROM heartbeat WHERE id = 1").fetchone()
        if row is None:
            return None
        beat = dict(row)
        beat["age_s"] = (datetime.now(timezone.utc) - datetime.fromisoformat(beat["beat_at"])).total_seconds()
        return beat

    def alive(self, max_age_s: float = 15.0, beat: dict | None | object = _UNREAD) -> bool:
        """Whether a runner beat within ``max_age_s`` (and, on this host, its process exists).

        ``beat``: the ``heartbeat()`` the caller already read, None included (else it is read here).
        """
        if beat is _UNREAD:
            beat = self.heartbeat()
        if beat is None or beat["age_s"] > max_age_s:
            return False
        # a runner killed a moment ago still has a fresh beat; on this host, ask the OS
        return beat["host"] != socket.gethostname() or _pid_alive(beat["pid"])

    def runner_state(self) -> dict[str, Any]:
        """The runner's small persisted state by key (last scheduled tick, schedule, ...)."""
        with self._connection(write=False) as conn:
            return {row["key"]: json.loads(row["value"]) for row in conn.execute("SELECT * FROM runner_state")}

    def set_runner_state(self, **values: Any) -> None:
        """Store runner state values (JSON-able) by key, all in one transaction."""
        now = utc_now()
        with self._connection(write=True) as conn:
            conn.executemany("INSERT OR REPLACE INTO runner_state (key, value, updated_at) VALUES (?, ?, ?)",
                             [(key, json.dumps(value, default=str), now) for key, value in values.items()])

    def clear_heartbeat(self, pid: int) -> bool:
        """Remove the heartbeat at a clean runner stop, if it is still ``pid``'s; returns whether."""
        with self._connection(write=True) as conn:
            return conn.execute("DELETE FROM heartbeat WHERE id = 1 AND pid = ?", (pid,)).rowcount > 0
