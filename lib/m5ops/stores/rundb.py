"""The schema of ``runs.db`` and its migrations; the run, metric and runner-state stores share it.

Version 1: runs, metrics, heartbeat, runner_state. Version 2: ``runs.progress`` and
``runs.progress_note``. Version 3: metrics keyed also by ``source`` (backtest | live),
``level`` (``all`` or a WRMSSE level 1-12), ``horizon`` and ``issue_day`` (0 on backtest rows),
with ``excluded`` (series left out of a WRMSSE, having no scale). Version 4: ``alerts``. Version 5: serving, as
``production`` (who serves, one row per change), ``audit`` (every change of production or of a
model's current version, with its evidence) and ``settings`` (the serving policy). Then: demand
``scenarios`` and the ``scenario_days`` each was applied to; then ``drift`` (per evaluated day, model,
version and column: PSI, normalised Wasserstein, Jensen-Shannon); then ``runs.worker``, the address of
the Dask worker a run executed on. A new table or column is a new step at the end of ``MIGRATIONS``.
"""
from __future__ import annotations

import os
import sqlite3

from m5ops.stores.sqlite import Database, sql_list

TRIGGERS = ("schedule", "manual", "backfill")
STATUSES = ("queued", "running", "succeeded", "failed", "interrupted", "cancelled")
FINISHED = ("succeeded", "failed", "interrupted", "cancelled")
OPEN = ("queued", "running")

_TABLES_V1 = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    model TEXT,
    params TEXT NOT NULL DEFAULT '{{}}',
    "trigger" TEXT NOT NULL CHECK ("trigger" IN {sql_list(TRIGGERS)}),
    status TEXT NOT NULL CHECK (status IN {sql_list(STATUSES)}),
    sim_day INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    output TEXT,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    pid INTEGER
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


def _script(script: str, what: str):
    """A migration step running ``script`` statement by statement (``executescript`` would commit
    mid-migration; the Database runs each step in one transaction)."""
    def step(conn: sqlite3.Connection) -> None:
        for statement in filter(str.strip, script.split(";")):
            conn.execute(statement)
    step.__doc__ = what
    return step


_create_tables = _script(_TABLES_V1, "Version 1: the four tables.")


def _add_columns(table: str, columns: dict[str, str]):
    """A migration adding ``columns`` (name -> type) to ``table`` where they are missing."""
    def step(conn: sqlite3.Connection) -> None:
        present = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
        for column, kind in columns.items():
            if column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    return step


METRIC_SOURCES = ("backtest", "live")
_METRICS_V3 = f"""
CREATE TABLE metrics_v3 (
    sim_day INTEGER NOT NULL,
    sim_date TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    window_start INTEGER,
    window_end INTEGER,
    run_id TEXT,
    source TEXT NOT NULL DEFAULT 'backtest' CHECK (source IN {sql_list(METRIC_SOURCES)}),
    level TEXT NOT NULL DEFAULT 'all',
    horizon INTEGER NOT NULL DEFAULT 0,
    issue_day INTEGER NOT NULL DEFAULT 0,
    excluded INTEGER,
    PRIMARY KEY (sim_day, model, version, metric, source, level, horizon, issue_day)
)"""


def _metrics_by_source_and_level(conn: sqlite3.Connection) -> None:
    """Version 3: the metrics table rebuilt with its new key columns; old rows become backtest rows."""
    _create_tables(conn)  # idempotent: a file whose version-1 tables were not all made yet
    conn.execute(_METRICS_V3)
    conn.execute("INSERT INTO metrics_v3 (sim_day, sim_date, model, version, metric, value, window_start,"
                 " window_end, run_id) SELECT sim_day, sim_date, model, version, metric, value,"
                 " window_start, window_end, run_id FROM metrics")
    conn.execute("DROP TABLE metrics")
    conn.execute("ALTER TABLE metrics_v3 RENAME TO metrics")
    conn.execute("CREATE INDEX IF NOT EXISTS metrics_by_model ON metrics (model, source, metric, sim_day)")


_ALERTS = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    model TEXT,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    sim_day INTEGER,
    raised_at TEXT NOT NULL,
    cleared_at TEXT,
    cleared_why TEXT
)"""


def _alerts(conn: sqlite3.Connection) -> None:
    """Version 4: alerts, one open row per condition (the partial unique index holds it)."""
    conn.execute(_ALERTS)
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_once ON alerts (key) WHERE cleared_at IS NULL")


# who changed serving: the runner's tick, the promotion rule, a command, a dashboard button
ACTORS = ("schedule", "rule", "cli", "dashboard")
AUDIT_ACTIONS = ("accepted", "rejected", "forced", "promoted", "rolled_back", "handed_over", "followed_backtest")
_SERVING_V5 = f"""
CREATE TABLE IF NOT EXISTS production (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    at TEXT NOT NULL,
    sim_day INTEGER NOT NULL,
    actor TEXT NOT NULL CHECK (actor IN {sql_list(ACTORS)}),
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    sim_day INTEGER NOT NULL,
    actor TEXT NOT NULL CHECK (actor IN {sql_list(ACTORS)}),
    action TEXT NOT NULL CHECK (action IN {sql_list(AUDIT_ACTIONS)}),
    model TEXT NOT NULL,
    version TEXT,
    previous_model TEXT,
    previous_version TEXT,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS audit_by_model ON audit (model, id);
CREATE TABLE IF NOT EXISTS settings (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
)"""


_serving_tables = _script(_SERVING_V5, "Version 5: production, audit and settings.")


_SCENARIOS = """
CREATE TABLE IF NOT EXISTS scenarios (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_day INTEGER NOT NULL,
    to_day INTEGER,
    factor REAL NOT NULL CHECK (factor > 0),
    store TEXT,
    category TEXT,
    department TEXT,
    added_at TEXT NOT NULL,
    removed_at TEXT
);
CREATE TABLE IF NOT EXISTS scenario_days (
    day INTEGER NOT NULL,
    scenario INTEGER NOT NULL REFERENCES scenarios (id),
    factor REAL NOT NULL,
    series INTEGER NOT NULL,
    PRIMARY KEY (day, scenario)
)"""


_scenarios = _script(_SCENARIOS, "Demand scenarios (``stores.scenarios``), and the days each one was applied to.")


_DRIFT = """
CREATE TABLE IF NOT EXISTS drift (
    sim_day INTEGER NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    "column" TEXT NOT NULL,
    kind TEXT NOT NULL,
    is_target INTEGER NOT NULL DEFAULT 0,
    psi REAL,
    wasserstein REAL,
    jensen_shannon REAL,
    n_reference INTEGER NOT NULL,
    n_current INTEGER NOT NULL,
    reference_start INTEGER NOT NULL,
    reference_end INTEGER NOT NULL,
    current_start INTEGER NOT NULL,
    current_end INTEGER NOT NULL,
    run_id TEXT,
    PRIMARY KEY (sim_day, model, version, "column")
)"""


def _drift_table(conn: sqlite3.Connection) -> None:
    """Drift of each version's columns against its training window, one row per evaluated day and column."""
    conn.execute(_DRIFT)
    conn.execute("CREATE INDEX IF NOT EXISTS drift_by_model ON drift (model, is_target, sim_day)")


MIGRATIONS = [
    _create_tables,
    _add_columns("runs", {"progress": "REAL", "progress_note": "TEXT"}),
    _metrics_by_source_and_level,
    _alerts,
    _serving_tables,
    _scenarios,
    _drift_table,
    _add_columns("runs", {"worker": "TEXT"}),  # the Dask worker's address a run executed on (NULL: locally)
]
SCHEMA_VERSION = len(MIGRATIONS)


def open_rundb(path: str | os.PathLike) -> Database:
    """``runs.db`` at ``path``, created or migrated to the current schema."""
    return Database(path, MIGRATIONS, what="run store")


class RunDbStore:
    """The base of the stores that share ``runs.db``: the file, opened and migrated on creation."""

    def __init__(self, path: str | os.PathLike):
        self.db = open_rundb(path)
        self.path = self.db.path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"
