"""What is wrong now, as alert conditions, and the one call that records them.

Each check reads the stores and returns the conditions that hold; ``refresh_alerts`` syncs them
with the alert store, so an alert is raised once while its condition lasts and cleared when it
ends. The runner calls it after every run and every few seconds; ``m5ops alerts`` too.
"""
from __future__ import annotations

import logging
import statistics
from collections.abc import Callable

from m5ops.evaluation.drift import SIGNIFICANT as DRIFT_PSI  # a target PSI this high: significant drift
from m5ops.stores.alerts import AlertStore, Condition
from m5ops.stores.clock import age_s
from m5ops.stores.drift import DriftStore
from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import MetricStore
from m5ops.stores.registry import Registry, current_version
from m5ops.stores.runner_state import RunnerState
from m5ops.stores.runs import RunStore

log = logging.getLogger("m5ops.alerts")
RECENT_RUNS = 200
OVERDUE_FACTOR = 3.0
USUAL_OF = 10  # runs whose median is a run's usual duration
DEGRADATION = 0.15  # 15% worse than in the week after training
WINDOW_DAYS = 7
BASELINE_KIND = "seasonal_naive"


def _label(task: str, model: str | None) -> str:
    return f"{task}-{model}" if model else task


def failed_runs(workspace: Workspace) -> list[Condition]:
    """The last run of a task (and model) failed; cleared when a later one succeeds."""
    latest: dict[tuple, dict] = {}
    for run in RunStore(workspace.runs_path).runs(limit=RECENT_RUNS):  # newest first
        if run["status"] in ("succeeded", "failed"):
            latest.setdefault((run["task"], run.get("model")), run)
    return [Condition(f"failed-run:{task}:{model or ''}", "failed-run",
                      f"{_label(task, model)} failed (run {run['id']}): {run.get('error')}", model,
                      {"run": run["id"], "error": run.get("error"), "notebook": run.get("output")}, run.get("sim_day"))
            for (task, model), run in latest.items() if run["status"] == "failed"]


def overdue_runs(workspace: Workspace) -> list[Condition]:
    """A running run past 3x the median duration of its last 10 successful ones."""
    runs, found = RunStore(workspace.runs_path), []
    for run in runs.running():
        past = [r for r in runs.runs(limit=USUAL_OF, task=run["task"], model=run.get("model"), status="succeeded")
                if r.get("started_at") and r.get("finished_at")]
        if len(past) < 3 or not run.get("started_at"):
            continue  # no usual duration yet
        usual = statistics.median(age_s(r["started_at"]) - age_s(r["finished_at"]) for r in past)
        elapsed = age_s(run["started_at"])
        if elapsed > OVERDUE_FACTOR * max(usual, 1.0):
            found.append(Condition(f"overdue-run:{run['id']}", "overdue-run",
                                   f"{_label(run['task'], run.get('model'))} (run {run['id']}) has run {elapsed:.0f} s,"
                                   f" over {OVERDUE_FACTOR:g}x its usual {usual:.0f} s", run.get("model"),
                                   {"run": run["id"], "elapsed_s": round(elapsed, 1), "usual_s": round(usual, 1)}))
    return found


def runner_down(workspace: Workspace) -> list[Condition]:
    """A runner stopped beating without a clean stop (a clean stop removes its heartbeat)."""
    state = RunnerState(workspace.runs_path)
    beat = state.heartbeat()
    if beat is None or state.alive(beat=beat):
        return []
    return [Condition("runner-down", "runner-down",
                      f"the runner (pid {beat['pid']} on {beat['host']}) stopped beating {beat['age_s']:.0f} s ago;"
                      f" start it with 'm5ops --home {workspace.home} runner'",
                      evidence={"pid": beat["pid"], "host": beat["host"], "last_beat": beat["beat_at"]})]


def degradation(workspace: Workspace) -> list[Condition]:
    """A current version's WRMSSE of the last 7 days 15% worse than in its first 7, or worse than sNaive's."""
    return [Condition(f"degradation:{name}", "degradation", evidence["text"], name, evidence, evidence["day"])
            for name, evidence in degraded_models(workspace).items()]


def degraded_models(workspace: Workspace) -> dict[str, dict]:
    """Models whose current version degraded, with the evidence (the scores compared)."""
    models = Registry(workspace.registry_path).models()
    history = MetricStore(workspace.runs_path).history()
    history = history[history["metric"] == "wrmsse"]
    baseline = _recent_of_kind(models, history, BASELINE_KIND)
    found = {}
    for name, model in models.items():
        version = current_version(model)
        if version is None:
            continue
        rows = history[(history["model"] == name) & (history["version"] == version["id"])].sort_values("sim_day")
        after = rows[rows["sim_day"] <= version["sim_day"] + WINDOW_DAYS]["value"].dropna()
        recent = rows.tail(WINDOW_DAYS)
        if len(recent) < WINDOW_DAYS or recent["sim_day"].iloc[0] <= version["sim_day"] + WINDOW_DAYS // 2:
            continue  # not a week of evaluations since the week after training
        now = float(recent["value"].mean())
        day = int(recent["sim_day"].iloc[-1])
        if len(after) >= 3 and now >= (1 + DEGRADATION) * float(after.mean()):
            then = float(after.mean())
            found[name] = {"day": day, "then": round(then, 4), "now": round(now, 4), "rule": "worse than after training",
                           "text": f"on-degradation: WRMSSE {then:.2f} -> {now:.2f} ({now / then - 1:+.0%}) over"
                                   f" {WINDOW_DAYS} days"}
        elif model["kind"] != BASELINE_KIND and baseline is not None and now > baseline:
            found[name] = {"day": day, "now": round(now, 4), "baseline": round(baseline, 4), "rule": "worse than sNaive",
                           "text": f"on-degradation: WRMSSE {now:.2f} over {WINDOW_DAYS} days is worse than"
                                   f" seasonal naive's {baseline:.2f}"}
    return found


def _recent_of_kind(models: dict, history, kind: str) -> float | None:
    """The best last-7-days WRMSSE among the models of ``kind``, None if there is none."""
    values = [history[history["model"] == name].sort_values("sim_day").tail(WINDOW_DAYS)["value"].mean()
              for name, model in models.items() if model["kind"] == kind]
    values = [float(v) for v in values if v == v]
    return min(values) if values else None


def drift(workspace: Workspace) -> list[Condition]:
    """Significant drift: a current version's latest target PSI is at least 0.25; cleared when it falls below."""
    found = []
    models = Registry(workspace.registry_path).models()
    for name, row in DriftStore(workspace.runs_path).latest_target().items():
        version = current_version(models[name]) if name in models else None
        psi = row["psi"]
        if version is None or row["version"] != version["id"] or psi != psi or psi < DRIFT_PSI:
            continue  # a deleted model, a version since replaced, an undefined or a small PSI
        evidence = {"version": row["version"], "psi": round(float(psi), 4), "threshold": DRIFT_PSI,
                    "reference": [int(row["reference_start"]), int(row["reference_end"])],
                    "current": [int(row["current_start"]), int(row["current_end"])], "day": int(row["sim_day"])}
        found.append(Condition(f"drift:{name}", "drift", f"on-drift: target PSI {psi:.2f} >= {DRIFT_PSI:g}", name,
                               evidence, int(row["sim_day"])))
    return found


CHECKS: dict[str, Callable[[Workspace], list[Condition]]] = {
    "failed-run": failed_runs, "overdue-run": overdue_runs, "runner-down": runner_down, "degradation": degradation,
    "drift": drift,
}
MODEL_ALERTS = tuple(kind for kind in ("degradation", "drift") if kind in CHECKS)  # what triggers a training


def refresh_alerts(workspace: Workspace, kinds: tuple[str, ...] | None = None) -> tuple[list[dict], list[dict]]:
    """Evaluate the checks of ``kinds`` (default: all) and record the result; (raised, cleared)."""
    kinds = tuple(CHECKS) if kinds is None else kinds
    holding = [condition for kind in kinds for condition in CHECKS[kind](workspace)]
    raised, cleared = AlertStore(workspace.runs_path).sync(holding, kinds)
    for alert in raised:
        log.warning("alert %s raised: %s", alert["id"], alert["message"])
    for alert in cleared:
        log.info("alert %s cleared: %s", alert["id"], alert["message"])
    return raised, cleared
