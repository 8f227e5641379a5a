"""Run history and the manual-request queue: the ``runs`` table of ``runs.db``.

A run moves ``queued -> running -> succeeded | failed | interrupted | cancelled`` (a queued run
may also be cancelled or failed directly). While it runs, its task reports how far it got
(``progress`` from 0 to 1 and a short note). Times are ISO 8601 UTC with milliseconds.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from m5ops.errors import RunError
from m5ops.stores.clock import utc_now
from m5ops.stores.rundb import FINISHED, OPEN, STATUSES, TRIGGERS, RunDbStore
from m5ops.stores.sqlite import placeholders

_RUN_COLUMNS = ("id, task, model, params, \"trigger\", status, sim_day, created_at, started_at,"
                " finished_at, output, error, attempt, pid, progress, progress_note, worker")


def new_run_id() -> str:
    """A short, time-sortable, practically unique id: 20261126T101500-3f9a2c."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def run_label(run: dict) -> str:
    """``<id> <task>[-<model>]``: how ``m5ops status`` and the dashboard name a run."""
    return f"{run['id']} {run['task']}{'-' + run['model'] if run.get('model') else ''}"


def failed_run_line(run: dict) -> str:
    """``run <id> <task>[-<model>] failed: <error> (notebook: <path>)``: one line for a run that did not succeed."""
    label = run["task"] + (f"-{run['model']}" if run.get("model") else "")
    return f"run {run['id']} {label} {run['status']}: {run.get('error')} (notebook: {run.get('output') or 'none'})"


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


class RunStore(RunDbStore):
    """The SQLite file at ``path`` (created with its tables on first use)."""

    def _change_run(self, run_id: str, allowed: Iterable[str], sets: dict, verb: str) -> dict:
        """Set columns of a run in one of the ``allowed`` states; RunError saying why not otherwise."""
        allowed = tuple(allowed)
        assignments = ", ".join(f"{column} = ?" for column in sets)
        sql = (f"UPDATE runs SET {assignments} WHERE id = ? AND status IN"
               f" ({placeholders(allowed)}) RETURNING {_RUN_COLUMNS}")
        with self.db.connect(write=True) as conn:
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
            with self.db.connect(write=True) as conn:
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
        skip = f"AND (model IS NULL OR model NOT IN ({placeholders(excluded)}))" if excluded else ""
        skip += f" AND task NOT IN ({placeholders(tasks)})" if tasks else ""
        sql = (f"UPDATE runs SET status = 'running', started_at = ?, pid = ? WHERE id ="
               f" (SELECT id FROM runs WHERE status = 'queued' {skip} ORDER BY created_at, rowid LIMIT 1)"
               f" RETURNING {_RUN_COLUMNS}")
        with self.db.connect(write=True) as conn:
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

    def claim_worker(self, run_id: str, worker: str) -> str | None:
        """Record that ``worker`` executes a running run, unless another one did first; the earlier worker.

        None when ``worker`` is now the run's. An address already there means a worker took the
        run and was lost (Dask hands a lost worker's task to another one): the new worker must
        not execute it again, the runner records it interrupted and retries it as a new run.
        """
        sql = "UPDATE runs SET worker = ? WHERE id = ? AND status = 'running' AND worker IS NULL"
        with self.db.connect(write=True) as conn:
            if conn.execute(sql, [worker, run_id]).rowcount == 1:
                return None
            row = conn.execute("SELECT status, worker FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            raise RunError(f"no run with id {run_id!r}; list runs with RunStore.runs()")
        return row["worker"] or f"(none: the run is {row['status']})"

    def set_progress(self, run_id: str, fraction: float, note: str = "") -> bool:
        """Record how far a running run got (``fraction`` from 0 to 1, clipped) and what it does now.

        False, and nothing written, when the run is not running (any more): a task that outlived
        its run, say after the runner marked it interrupted, must not fail on its progress report.
        """
        fraction = float(fraction)
        if math.isnan(fraction):
            raise RunError(f"progress of run {run_id} must be a number from 0 to 1, got NaN")
        sql = "UPDATE runs SET progress = ?, progress_note = ? WHERE id = ? AND status = 'running'"
        with self.db.connect(write=True) as conn:
            return conn.execute(sql, [min(1.0, max(0.0, fraction)), note[:200], run_id]).rowcount == 1

    def _close_many(self, where: str, args: list, status: str, error: str) -> int:
        """Close every open run matching ``where`` with ``status``; returns how many."""
        sql = f"UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE {where}"
        with self.db.connect(write=True) as conn:
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
        with self.db.connect() as conn:
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
            clauses.append(f"status IN ({placeholders(statuses)})")
            args.extend(statuses)
        return self._select(" AND ".join(clauses), args, limit=limit)

    def queued(self) -> list[dict]:
        """Queued runs, oldest (next to start) first."""
        return self._select("status = 'queued'", order="ASC")

    def running(self) -> list[dict]:
        """Running runs, oldest first."""
        return self._select("status = 'running'", order="ASC")
