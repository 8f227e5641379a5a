"""Production: which (model, version) serves, and the changes to it: promote, roll back, hand over, the rule.

One model serves per workspace; its version is that model's current version, so a version the
gate accepts serves at once. Until the first promotion (no row in ``stores.serving``),
production is the model with the best backtest WRMSSE among those with a version. Every
change runs under the serving lock and leaves an audit entry; the CLI, the dashboard and the
runner all call these same functions. Refusals raise ``ServingError`` naming the fix.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from m5ops.data.store import DayStore
from m5ops.errors import RegistryError, ServingError
from m5ops.pipeline import promotion
from m5ops.stores.audit import AuditEntry, AuditLog
from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import MetricStore
from m5ops.stores.registry import Registry, current_version, find_model, find_version
from m5ops.stores.serving import ServingStore

log = logging.getLogger("m5ops.pipeline.serving")
MODEL_CHANGES = ("promoted", "handed_over", "followed_backtest")  # production moved to another model
VERSION_CHANGES = ("accepted", "forced", "rolled_back")  # a model's current version changed


@dataclass(frozen=True)
class Production:
    """The (model, version) that serves, and why."""

    model: str
    version: str
    basis: str  # "promoted": a recorded change; "backtest": no promotion yet, the best backtest
    reason: str

    def as_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "basis": self.basis, "reason": self.reason}


def today(workspace: Workspace) -> int:
    """The simulated today: the last stored day."""
    return DayStore(workspace.data_dir).last_day()


def backtest_wrmsse(workspace: Workspace, models: dict[str, dict]) -> dict[str, float]:
    """Each model's current version's backtest WRMSSE: its latest evaluation, else the gate's at training.

    A version just accepted has not been evaluated yet; the score the gate gave it on the test
    window of its training day stands in until the next evaluation.
    """
    current = {name: model.get("current_version") for name, model in models.items()}
    scores = {name: _gate_score(models[name]) for name in models}
    for name, version, metric, value, *_ in MetricStore(workspace.runs_path).latest_rows():
        if metric == "wrmsse" and current.get(name) == version:
            scores[name] = value
    return {name: float(value) for name, value in scores.items() if value is not None and math.isfinite(value)}


def _gate_score(model: dict) -> float | None:
    """The backtest WRMSSE the current version got when it was trained (None if none was recorded)."""
    version = current_version(model)
    return ((version or {}).get("lineage") or {}).get("backtest", {}).get("wrmsse")


def resolve(workspace: Workspace, models: dict[str, dict] | None = None) -> Production | None:
    """Production now: the last promoted model if it still has a version, else the best backtest; or None."""
    models = Registry(workspace.registry_path).models() if models is None else models
    latest = ServingStore(workspace.runs_path).latest()
    if latest is not None and latest.model in models and models[latest.model].get("current_version"):
        return Production(latest.model, models[latest.model]["current_version"], "promoted", latest.reason)
    scores = backtest_wrmsse(workspace, models)
    if not scores:
        return None
    best = min(scores, key=lambda name: (scores[name], name))
    why = "the last production model is gone; " if latest is not None else "no promotion yet: "
    return Production(best, models[best]["current_version"], "backtest",
                      f"{why}the best backtest WRMSSE ({scores[best]:.4g}) among {len(scores)} model(s) with a version")


def serving_model(workspace: Workspace) -> tuple[str, str] | None:
    """``(model, version)`` of production, or None while no model has a scored version."""
    found = resolve(workspace)
    return (found.model, found.version) if found else None


def serving_model_name(workspace: Workspace) -> str | None:
    """The name of the model that serves (whose forecast goes out), or None while none can."""
    found = resolve(workspace)
    return found.model if found else None


def version_status(model: dict, version: dict, production: Production | None) -> str:
    """What a user sees: ``serving`` for production's version, else the stored status."""
    if production and production.model == model["name"] and production.version == version["id"]:
        return "serving"
    return version["status"]


def since(entries: list[AuditEntry], production: Production) -> AuditEntry | None:
    """The newest entry (of ``entries``, newest first) that made production what it is now."""
    for entry in entries:
        if entry.model != production.model:
            continue
        if entry.action in MODEL_CHANGES or (entry.action in VERSION_CHANGES and entry.version == production.version):
            return entry
    return None


def _evidence(workspace: Workspace, names: list[str], models: dict[str, dict]) -> dict:
    """Live and backtest WRMSSE of the named models: what a decision was made on."""
    windows = ServingStore(workspace.runs_path).settings().promotion_windows
    live = promotion.live_windows(workspace, names)
    backtest = backtest_wrmsse(workspace, models)
    return {name: {"version": (models.get(name) or {}).get("current_version"), "backtest_wrmsse": backtest.get(name),
                   "live": promotion.recent(live.get(name, {}), windows).as_dict()} for name in names}


def promote(workspace: Workspace, model: str, version: str | None = None, *, actor: str,
            reason: str | None = None, evidence: dict | None = None, expected: str | None = None) -> AuditEntry:
    """Make ``model`` (at ``version``, default its current one) production; the audit entry.

    ``expected``: the current version the asker saw (a dashboard's confirmation); refused if it changed.
    """
    registry = Registry(workspace.registry_path)
    _promotable(registry.get(model), version)  # refused before runs.db is opened; checked again under the lock
    store = ServingStore(workspace.runs_path)
    with store.locked():
        data = registry.data()
        models = data["models"]
        record = find_model(data, model)
        _check_expected(record, expected)
        target = _promotable(record, version)
        before = resolve(workspace, models)
        if before and before.basis == "promoted" and (before.model, before.version) == (model, target):
            raise ServingError(f"{model} {target} already serves (since a recorded promotion); nothing was changed")
        if target != record.get("current_version"):
            registry.set_current(model, target)
        names = [model] + ([before.model] if before and before.model != model else [])
        entry = AuditEntry(
            sim_day=today(workspace), actor=actor, action="promoted", model=model, version=target,
            previous_model=before and before.model, previous_version=before and before.version,
            reason=reason or f"promoted by hand ({actor}): {model} {target} {_replacing(before, model, target)}",
            evidence=evidence or _evidence(workspace, names, registry.models()))
        entry = store.change_production(model, target, entry)
    log.info("promoted %s %s (%s): %s", model, target, actor, entry.reason)
    return entry


def _check_expected(record: dict, expected: str | None) -> None:
    """ServingError if the model's current version is no longer the one the asker saw."""
    if expected is not None and record.get("current_version") != expected:
        raise ServingError(f"{record['name']}'s current version is now {record.get('current_version')}, not"
                           f" {expected} as shown when you asked; look again and confirm anew")


def _replacing(before: Production | None, model: str, version: str) -> str:
    """What a promotion by hand replaces, in words."""
    if before is None:
        return "becomes the first production model"
    if (before.model, before.version) == (model, version):
        return "is kept in production by hand (it served as the best backtest)"
    return f"replaces {before.model} {before.version}"


def _promotable(record: dict, version: str | None) -> str:
    """The version a promotion would serve; ServingError naming the fix if there is none."""
    name = record["name"]
    if version is None:
        if record.get("current_version") is None:
            raise ServingError(f"{name} has no version yet, so it cannot serve: train it first ('m5ops train {name}')")
        return record["current_version"]
    target = _version_or_refuse(record, version)
    if not target["artifact_kept"]:
        raise ServingError(_gone(record, version))
    return version


def _version_or_refuse(record: dict, version: str) -> dict:
    """The version record, or ServingError listing the model's versions."""
    try:
        return find_version(record, version)
    except RegistryError as exc:  # restated as a serving refusal, with the same list of versions
        raise ServingError(str(exc)) from None


def _gone(record: dict, version: str) -> str:
    """Why a retired version cannot come back, and which can."""
    kept = [v["id"] for v in record["versions"] if v["artifact_kept"] and v["id"] != record.get("current_version")]
    choice = f"one of {', '.join(kept)}" if kept else "none is left: train a new version instead"
    return (f"{record['name']} {version} is retired and its artifact was removed by retention (the newest versions of"
            f" each model are kept: 'm5ops settings --keep-versions N'); pick a kept version: {choice}")


def rollback(workspace: Workspace, model: str, to: str | None = None, *, actor: str,
             expected: str | None = None) -> AuditEntry:
    """Make an earlier version ``model``'s current one (default: the one it replaced); the audit entry."""
    registry = Registry(workspace.registry_path)
    _rollback_target(registry.get(model), to)  # refused before runs.db is opened; checked again under the lock
    store = ServingStore(workspace.runs_path)
    with store.locked():
        record = registry.get(model)
        _check_expected(record, expected)
        current = current_version(record)
        target = _rollback_target(record, to)
        serving_before = resolve(workspace)
        registry.set_current(model, target)
        serves = bool(serving_before and serving_before.model == model)
        entry = AuditEntry(
            sim_day=today(workspace), actor=actor, action="rolled_back", model=model, version=target,
            previous_model=model, previous_version=current["id"],
            reason=f"rolled back by hand ({actor}): {model} {current['id']} -> {target}"
                   + ("; it serves in production" if serves else ""),
            evidence={"from": _scores_at_training(current), "to": _scores_at_training(find_version(record, target)),
                      "serving": serves})
        entry = AuditLog(workspace.runs_path).record(entry)
    log.info("rolled back %s %s -> %s (%s)", model, current["id"], target, actor)
    return entry


def _rollback_target(record: dict, to: str | None) -> str:
    """The version a rollback goes to; ServingError naming the fix when it cannot."""
    name = record["name"]
    current = current_version(record)
    if current is None:
        raise ServingError(f"{name} has no version yet: there is nothing to roll back")
    if to is None:
        to = current.get("previous")
        if to is None:
            versions = ", ".join(v["id"] for v in record["versions"])
            raise ServingError(f"{name} {current['id']} was the model's first current version, so there is no earlier"
                               f" one to go back to by default; name one with --to VERSION (versions: {versions})")
    if to == current["id"]:
        raise ServingError(f"{name} {to} is already the current version; nothing was changed")
    target = _version_or_refuse(record, to)
    if not target["artifact_kept"]:
        raise ServingError(_gone(record, to))
    return to


def _scores_at_training(version: dict) -> dict:
    """A version's id, status and backtest WRMSSE when it was trained (from its lineage)."""
    backtest = (version.get("lineage") or {}).get("backtest") or {}
    return {"version": version["id"], "status": version["status"], "backtest_wrmsse": backtest.get("wrmsse"),
            "window": backtest.get("window")}


def hand_over(workspace: Workspace, deleted: str, was: Production, *, actor: str) -> AuditEntry:
    """After deleting the serving model: production goes to the best challenger by live WRMSSE, else backtest.

    Called by ``lifecycle.delete_model`` under the serving lock, once the model is gone.
    """
    models = Registry(workspace.registry_path).models()
    heir, basis = _heir(workspace, models)
    day = today(workspace)
    if heir is None:
        entry = AuditEntry(sim_day=day, actor=actor, action="handed_over", model=deleted, version=None,
                           previous_model=deleted, previous_version=was.version,
                           reason=f"{deleted} was deleted while in production and no other model has a scored"
                                  " version: production follows the best backtest once one has")
        return AuditLog(workspace.runs_path).record(entry)
    version = models[heir]["current_version"]
    entry = AuditEntry(sim_day=day, actor=actor, action="handed_over", model=heir, version=version,
                       previous_model=deleted, previous_version=was.version,
                       reason=f"{deleted} was deleted while in production; {heir} {version} takes over, {basis}",
                       evidence=_evidence(workspace, [heir], models))
    entry = ServingStore(workspace.runs_path).change_production(heir, version, entry)
    log.info("production handed over from deleted %s to %s %s", deleted, heir, version)
    return entry


def _heir(workspace: Workspace, models: dict[str, dict]) -> tuple[str | None, str]:
    """The model that should serve next and why: best live WRMSSE, else best backtest, else none."""
    candidates = [name for name, model in models.items() if model.get("current_version")]
    windows = ServingStore(workspace.runs_path).settings().promotion_windows
    live = {name: promotion.recent(scores, windows) for name, scores in
            promotion.live_windows(workspace, candidates).items()}
    live = {name: record for name, record in live.items() if record.mean is not None}
    if live:
        best = min(live, key=lambda name: (live[name].mean, name))
        return best, (f"the best live WRMSSE ({live[best].mean:.4g} over its last {len(live[best].windows)}"
                      " complete issue windows) among the challengers")
    backtest = backtest_wrmsse(workspace, {name: models[name] for name in candidates})
    if backtest:
        best = min(backtest, key=lambda name: (backtest[name], name))
        return best, f"no challenger has live scores yet: the best backtest WRMSSE ({backtest[best]:.4g})"
    return None, ""


def decide(workspace: Workspace, actor: str = "rule") -> AuditEntry | None:
    """The tick's decision step: note where production follows the backtest, and apply the promotion rule."""
    store = ServingStore(workspace.runs_path)
    with store.locked():
        settings = store.settings()
        models = Registry(workspace.registry_path).models()
        production = resolve(workspace, models)
        if production is None:
            return None
        noted = _note_followed_backtest(workspace, production, actor)
        if settings.promotion != "auto":
            return noted
        challengers = [name for name, model in models.items() if model.get("current_version")]
        found = promotion.best_challenge(production.model, challengers, promotion.live_windows(workspace, challengers),
                                         settings.promotion_windows, settings.promotion_margin)
        if found is None:
            return noted
        return promote(workspace, found.challenger, actor=actor, reason=f"promoted by the rule: {found.reason()}",
                       evidence=found.evidence())


def _note_followed_backtest(workspace: Workspace, production: Production, actor: str) -> AuditEntry | None:
    """Before any promotion production follows the best backtest: log each time that moves it to another model."""
    if production.basis != "backtest":
        return None
    audit = AuditLog(workspace.runs_path)
    last = audit.last(actions=MODEL_CHANGES)
    if last is not None and last.model == production.model and last.action == "followed_backtest":
        return None
    entry = AuditEntry(sim_day=today(workspace), actor=actor, action="followed_backtest", model=production.model,
                       version=production.version, previous_model=last and last.model,
                       previous_version=last and last.version, reason=f"production is {production.model}"
                       f" {production.version}: {production.reason}",
                       evidence=_evidence(workspace, [production.model], Registry(workspace.registry_path).models()))
    return audit.record(entry)


def with_statuses(models: dict[str, dict], production: Production | None) -> dict[str, dict]:
    """A copy of the registry's models in which each version's status is what a user sees (``serving`` too)."""
    shown = {}
    for name, model in models.items():
        versions = [{**version, "status": version_status(model, version, production)} for version in model["versions"]]
        shown[name] = {**model, "versions": versions}
    return shown


def overview(workspace: Workspace) -> dict:
    """Production (since when, why), each challenger, their live and backtest WRMSSE, and the policy."""
    models = Registry(workspace.registry_path).models()
    production = resolve(workspace, models)
    settings = ServingStore(workspace.runs_path).settings()
    names = [name for name, model in models.items() if model.get("current_version")]
    live = promotion.live_windows(workspace, names)
    backtest = backtest_wrmsse(workspace, models)

    def row(name: str) -> dict:
        return {"model": name, "version": models[name]["current_version"], "backtest_wrmsse": backtest.get(name),
                "live": promotion.recent(live.get(name, {}), settings.promotion_windows).as_dict()}
    shown = None
    if production is not None:
        entry = since(AuditLog(workspace.runs_path).entries(model=production.model, limit=200), production)
        why = entry.reason if entry and production.basis == "promoted" else production.reason  # the rule, not an entry
        shown = {**production.as_dict(), **row(production.model), "since_at": entry and entry.at,
                 "since_day": entry and entry.sim_day, "why": why}
    challengers = [row(name) for name in names if production is None or name != production.model]
    return {"today": today(workspace), "production": shown, "challengers": challengers, "settings": settings.as_dict()}
