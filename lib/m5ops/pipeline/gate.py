"""The gate on new versions: a retrained version becomes current only if it is no worse than the current one.

Both are scored on the same window, today's test window (the new version never saw it: it
trained on the days before), with the same WRMSSE evaluator. The new version passes when its
WRMSSE is at most the current version's times ``1 + tolerance`` (the workspace's
``gate_tolerance``, 10% by default, or the model's own). Otherwise it is registered as
``rejected`` with both scores, and the current version keeps serving; a manual training may
pass ``force`` to accept it anyway. Every verdict is an audit entry.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from m5ops.errors import ArtifactError
from m5ops.evaluation.metrics import evaluate_forecast
from m5ops.models import ForecastModel
from m5ops.pipeline import modeling, retention
from m5ops.stores.audit import AuditEntry, AuditLog
from m5ops.stores.registry import Registry
from m5ops.stores.serving import ServingStore

log = logging.getLogger("m5ops.pipeline.gate")


@dataclass(frozen=True)
class Verdict:
    """What the gate decided about one new version, and on what evidence."""

    accepted: bool
    forced: bool  # accepted only because the training was forced
    candidate: float | None  # the new version's WRMSSE on the window
    incumbent: float | None  # the current version's, on the same window
    incumbent_version: str | None
    tolerance: float
    window: tuple[int, int]
    reason: str

    @property
    def status(self) -> str:
        """The new version's registry status."""
        return "current" if self.accepted else "rejected"

    @property
    def action(self) -> str:
        """The audit action: accepted, rejected, or forced (accepted against the gate)."""
        return "forced" if self.forced else ("accepted" if self.accepted else "rejected")

    def evidence(self) -> dict:
        """The scores compared, for the version record and the audit log."""
        limit = None if self.incumbent is None or not math.isfinite(self.incumbent) else \
            self.incumbent * (1 + self.tolerance)
        return {"metric": "wrmsse", "window": list(self.window), "candidate": self.candidate,
                "incumbent": self.incumbent, "incumbent_version": self.incumbent_version,
                "tolerance": self.tolerance, "limit": limit, "forced": self.forced, "verdict": self.action}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def judge(candidate: float | None, incumbent: float | None, tolerance: float, *, incumbent_version: str | None,
          window: tuple[int, int], force: bool = False) -> Verdict:
    """The gate's rule on two scores (pure): pass when candidate <= incumbent * (1 + tolerance)."""
    days = f"days {window[0]}..{window[1]}"
    if incumbent_version is None:
        passed, why = True, "the first version of the model: there is no current version to compare with"
    elif not _finite(candidate):
        passed, why = False, f"its WRMSSE on {days} could not be computed (no finite score)"
    elif not _finite(incumbent):
        passed, why = True, f"the current {incumbent_version} has no finite WRMSSE on {days} to compare with"
    else:
        limit = incumbent * (1 + tolerance)
        passed = candidate <= limit
        relation = "is within" if passed else "is worse by more than"
        why = (f"WRMSSE {candidate:.4g} on {days} {relation} {tolerance:.0%} of the current"
               f" {incumbent_version}'s {incumbent:.4g} (limit {limit:.4g})")
    if not passed and force:
        return Verdict(True, True, candidate, incumbent, incumbent_version, tolerance, window,
                       f"forced (--force) although {why}")
    if not passed:
        why += f"; {incumbent_version} stays current" if incumbent_version else ""
    return Verdict(passed, False, candidate, incumbent, incumbent_version, tolerance, window, why)


def backtest_scores(data: modeling.WorkspaceData, models: list[ForecastModel]) -> list[dict]:
    """Each model's metrics on today's test window (one input read, one WRMSSE evaluator)."""
    inp = modeling.test_input(data)
    actual = modeling.actual_matrix(inp, len(data.series))
    evaluator = modeling.wrmsse_for(data)
    return [evaluate_forecast(actual, modeling.forecast_matrix(model, inp, len(data.series)), wrmsse=evaluator)
            for model in models]


def examine(data: modeling.WorkspaceData, name: str, candidate: ForecastModel, tolerance: float,
            force: bool = False) -> tuple[Verdict, dict]:
    """Score the new version and the model's current one on the same window; the verdict and the new scores."""
    loaded = _current_model(data, name)
    incumbent_id = loaded[1]["id"] if loaded else None
    scores = backtest_scores(data, [candidate] + ([loaded[0]] if loaded else []))
    incumbent = scores[1]["wrmsse"] if loaded else None
    verdict = judge(scores[0].get("wrmsse"), incumbent, tolerance, incumbent_version=incumbent_id,
                    window=data.split.test_range(), force=force)
    return verdict, scores[0]


def _current_model(data: modeling.WorkspaceData, name: str) -> tuple[ForecastModel, dict] | None:
    """The model's current version, loaded; None if it has none, or if its artifact cannot be read."""
    try:
        return modeling.load_current(data, name)
    except ArtifactError as exc:  # a broken current version must not block its own replacement
        log.warning("gate: the current version of %s cannot be loaded (%s); the new version is compared with nothing",
                    name, exc)
        return None


def admit(data: modeling.WorkspaceData, name: str, candidate: ForecastModel, record: dict, *,
          force: bool = False, manual: bool = False, actor: str = "schedule") -> tuple[str, Verdict]:
    """Judge a trained version and register it, current or rejected, with its audit entry; (id, verdict).

    Scored outside the serving lock (it takes a while at full shape); judged again under it if
    the current version changed meanwhile (a rollback during the training).
    """
    workspace = data.workspace
    store, registry = ServingStore(workspace.runs_path), Registry(workspace.registry_path)
    tolerance = store.settings().gate_for(name)
    verdict, scores = examine(data, name, candidate, tolerance, force)
    with store.locked():
        if (registry.get(name).get("current_version")) != verdict.incumbent_version:
            verdict, scores = examine(data, name, candidate, tolerance, force)
        record = {**record, "status": verdict.status, "gate": verdict.evidence()}
        record["lineage"] = {**record.get("lineage", {}), "backtest": {**scores, "window": list(verdict.window)}}
        version_id = registry.add_version(name, record, activate=manual, manual=manual,
                                          make_current=verdict.accepted)
        AuditLog(workspace.runs_path).record(AuditEntry(
            sim_day=data.split.today, actor=actor, action=verdict.action, model=name, version=version_id,
            previous_version=verdict.incumbent_version, reason=f"{name} {version_id}: {verdict.reason}",
            evidence={**verdict.evidence(), "trained_because": record["lineage"].get("trained_because")}))
        retention.keep_recent(workspace, name, store.settings().keep_versions)
    log.info("gate: %s %s %s: %s", name, version_id, verdict.action, verdict.reason)
    return version_id, verdict
