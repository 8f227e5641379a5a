"""What the Production panel shows, as plain data: who serves and why, the challengers, the audit log,
each model's versions with their lineage, and the forecast of the next 28 days after the recent actuals.

Nothing here touches a widget. ``ProductionReader`` re-reads only when the registry, the
metrics, the audit log, the serving record or today changed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from m5ops.data.schema import RECENT_DAYS, day_date, day_label
from m5ops.pipeline import serving
from m5ops.pipeline.serving import Production
from m5ops.stores.audit import AuditEntry, AuditLog
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import ForecastLedger, Issue
from m5ops.stores.metrics import MetricStore
from m5ops.stores.registry import Registry, version_number
from m5ops.stores.serving import ServingStore

AUDIT_ROWS = 15
TOTAL = "total"
# aggregates offered beside the total, as (label prefix, hierarchy column)
AGGREGATES = (("state", "state_id"), ("store", "store_id"), ("category", "cat_id"), ("department", "dept_id"))


@dataclass(frozen=True)
class ServingRow:
    """One model with a version: its role, its scores, and where a rollback would take it."""

    model: str
    version: str
    role: str  # production | challenger
    live_wrmsse: float | None
    live_windows: int
    backtest_wrmsse: float | None
    rollback_to: str | None  # the default target, when its artifact is kept
    rollback_note: str  # why there is no default target, when there is none


@dataclass(frozen=True)
class VersionRow:
    """One version and its lineage, as the versions table shows it."""

    id: str
    status: str
    trained: str
    cells: tuple[tuple[str, str], ...]  # (column, text) of the lineage


@dataclass(frozen=True)
class ForecastPlot:
    """The recent actuals and the issued forecast of each aggregate (``total`` first)."""

    model: str | None
    version: str | None
    issue_day: int | None
    actual_dates: tuple[str, ...]
    forecast_dates: tuple[str, ...]
    actual: dict[str, tuple[float, ...]]  # aggregate label -> one value per actual date
    forecast: dict[str, tuple[float, ...]]  # aggregate label -> one value per forecast date (empty: none issued)


@dataclass
class ProductionView:
    """Everything the Production panel shows at one moment."""

    production: dict | None
    rows: tuple[ServingRow, ...]
    audit: tuple[AuditEntry, ...]
    versions: dict[str, tuple[VersionRow, ...]]
    forecast: ForecastPlot | None
    policy: dict


def ledger_fingerprint(workspace: Workspace) -> tuple:
    """What changes when a forecast is issued: the newest issue day and the models that issued on it."""
    ledger = ForecastLedger.of(workspace)
    days = ledger.issue_days()
    return (days[-1], tuple(ledger.models_issued(days[-1]))) if days else ()


# -- pure shaping --------------------------------------------------------------------------
def aggregate_labels(series: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """``total`` and every state, store, category and department, each with its series' rows."""
    groups = [(TOTAL, np.arange(len(series)))]
    for prefix, column in AGGREGATES:
        for value in sorted(series[column].astype(str).unique()):
            groups.append((f"{prefix} {value}", np.flatnonzero(series[column].astype(str).to_numpy() == value)))
    return groups


def forecast_plot(series: pd.DataFrame, recent: np.ndarray, first_day: int, issued: Issue | None) -> ForecastPlot:
    """Sum the recent actuals (n_series, days from ``first_day``) and the issued forecast by aggregate."""
    days = np.arange(first_day, first_day + recent.shape[1])
    if issued is not None:
        matrix = issued.values.astype(float)
        target_days = np.arange(issued.issue_day + 1, issued.issue_day + matrix.shape[1] + 1)
    else:
        target_days, matrix = np.array([], dtype=int), np.zeros((len(series), 0))
    actual, forecast = {}, {}
    for label, rows in aggregate_labels(series):
        actual[label] = tuple(float(x) for x in recent[rows].sum(axis=0))
        forecast[label] = tuple(float(x) for x in matrix[rows].sum(axis=0))
    return ForecastPlot(issued and issued.model, issued and issued.version, issued and issued.issue_day,
                        _dates(days), _dates(target_days), actual, forecast)


def _dates(days: np.ndarray) -> tuple[str, ...]:
    return tuple(str(d.date()) for d in day_date(np.asarray(days, dtype=int))) if len(days) else ()


def serving_rows(view: dict, models: dict[str, dict]) -> tuple[ServingRow, ...]:
    """Production first, then each challenger, from ``serving.overview``."""
    rows = []
    for role, row in ([("production", view["production"])] if view["production"] else []) + \
            [("challenger", row) for row in view["challengers"]]:
        target, note = _rollback_target(models[row["model"]])
        rows.append(ServingRow(row["model"], row["version"], role, row["live"]["wrmsse"], row["live"]["windows"],
                               row["backtest_wrmsse"], target, note))
    return tuple(rows)


def _rollback_target(model: dict) -> tuple[str | None, str]:
    """The version a default rollback goes to, or why there is none (the CLI says the same)."""
    current = next((v for v in model["versions"] if v["id"] == model.get("current_version")), None)
    previous = current and current.get("previous")
    if previous is None:
        return None, "the current version was the first one: nothing to roll back to"
    target = next(v for v in model["versions"] if v["id"] == previous)
    if not target["artifact_kept"]:
        return None, f"{previous}'s artifact was removed by retention"
    return previous, ""


def version_rows(model: dict, production: Production | None) -> tuple[VersionRow, ...]:
    """A model's versions, newest first, with their lineage."""
    rows = []
    for version in sorted(model["versions"], key=lambda v: version_number(v["id"]), reverse=True):
        lineage = version.get("lineage") or {}
        backtest, gate, code = lineage.get("backtest") or {}, version.get("gate") or {}, lineage.get("code") or {}
        commit = (code.get("commit") or "")[:10] + ("+dirty" if code.get("dirty") else "") if code.get("commit") else "-"
        cells = (("cutoff", day_label(version["cutoff_day"])),
                 ("train days", _text(lineage.get("train_days"))),
                 ("rows", f"{version.get('rows', 0):,}"),
                 ("params", json.dumps(lineage.get("params", {}), sort_keys=True)),
                 ("features", f"{_text(lineage.get('features'))} #{lineage.get('feature_set_hash', '-')[:8]}"),
                 ("code", f"{code.get('package', '-')} {commit}"),
                 ("run", _text(lineage.get("run_id"))),
                 ("notebook", _text(lineage.get("notebook"))),
                 ("duration", f"{version.get('duration_s', 0):.1f} s"),
                 ("backtest WRMSSE", _score(backtest.get("wrmsse"), "not scored (trained before lineage)")),
                 ("gate", _gate_text(gate)),
                 ("artifact", "kept" if version["artifact_kept"] else "removed"))
        rows.append(VersionRow(version["id"], serving.version_status(model, version, production),
                               version["sim_date"], cells))
    return tuple(rows)


def _text(value) -> str:
    return "-" if value is None else str(value)


def _score(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.4g}"


def _gate_text(gate: dict) -> str:
    """``accepted 0.71 vs v2 0.69`` or ``-`` for a version from before the gate."""
    if not gate:
        return "-"
    against = f" vs {gate['incumbent_version']} {_score(gate.get('incumbent'), 'n/a')}" if gate.get("incumbent_version") else ""
    return f"{gate['verdict']} {_score(gate.get('candidate'), 'n/a')}{against}"


# -- reading the stores --------------------------------------------------------------------
class ProductionReader:
    """Reads the Production panel's data, again only when one of its stores changed."""

    def __init__(self, workspace: Workspace, store, registry: Registry, metrics: MetricStore):
        self.workspace, self.store, self.registry, self.metrics = workspace, store, registry, metrics
        self.audit, self.serving = AuditLog(workspace.runs_path), ServingStore(workspace.runs_path)
        self._key: tuple | None = None
        self._view: ProductionView | None = None
        self._forecast_key: tuple | None = None
        self._forecast: ForecastPlot | None = None

    def view(self, registry_key: tuple, today: int) -> ProductionView:
        """The panel's data (re-read when the registry, metrics, audit log, serving record, day or ledger changed)."""
        key = (registry_key, self.metrics.fingerprint(), self.audit.fingerprint(), self.serving.fingerprint(), today,
               ledger_fingerprint(self.workspace))
        if key != self._key or self._view is None:
            self._view, self._key = self._read(today), key
        return self._view

    def _read(self, today: int) -> ProductionView:
        overview = serving.overview(self.workspace)
        models = self.registry.models()
        production = serving.resolve(self.workspace, models)
        versions = {name: version_rows(model, production) for name, model in models.items() if model["versions"]}
        return ProductionView(overview["production"], serving_rows(overview, models),
                              tuple(self.audit.entries(limit=AUDIT_ROWS)), versions,
                              self._forecast_plot(production, today), overview["settings"])

    def _forecast_plot(self, production: Production | None, today: int) -> ForecastPlot:
        """The serving model's latest issue after the last 56 days of actuals (re-summed on a new issue)."""
        issued = ForecastLedger.of(self.workspace).latest(production.model) if production else None
        key = (today, issued and (issued.model, issued.version, issued.issue_day))
        if key != self._forecast_key:
            first = max(self.store.first_day(), today - RECENT_DAYS + 1)
            recent, _ = self.store.read_matrix(first, today)
            self._forecast = forecast_plot(self.store.series(), recent, first, issued)
            self._forecast_key = key
        return self._forecast

