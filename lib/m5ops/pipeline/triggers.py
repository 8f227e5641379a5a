"""Which trainings a tick starts: the calendar's (weekly) and those an open alert triggers.

A model retrained ``on-degradation`` or ``on-drift`` is trained when such an alert is open for
it, once per cooldown (default 7 simulated days since its current version), so a lasting shift
retrains it once, not daily. A paused model is never retrained by a trigger.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from m5ops.stores.alerts import AlertStore
from m5ops.stores.layout import Workspace
from m5ops.stores.registry import Registry, current_version, is_due, retrain_policy

COOLDOWN_DAYS = 7
TRIGGERS = {"on-degradation": "degradation", "on-drift": "drift"}  # policy -> alert kind


@dataclass(frozen=True)
class DueTraining:
    """A training a tick should start, and why."""

    model: str
    reason: str
    evidence: dict = field(default_factory=dict)


def due_trainings(workspace: Workspace, today: int, cooldown_days: int = COOLDOWN_DAYS) -> list[DueTraining]:
    """Every active model's training that is due today, by the calendar or by a trigger."""
    models = Registry(workspace.registry_path).models()
    alerts = AlertStore(workspace.runs_path).open()
    due = []
    for name, model in models.items():
        if not model["schedule"]["active"]:
            continue
        if is_due(model, today):
            first = current_version(model) is None
            due.append(DueTraining(name, "first version" if first else f"weekly: every {model['schedule']['every_days']} days"))
            continue
        triggered = _triggered(name, model, alerts, today, cooldown_days)
        if triggered:
            due.append(triggered)
    return due


def _triggered(name: str, model: dict, alerts: list[dict], today: int, cooldown_days: int) -> DueTraining | None:
    """The trigger that makes ``model`` due today, if any (its policy, an open alert, the cooldown over)."""
    current = current_version(model)
    if current is None or today - current["sim_day"] < cooldown_days:
        return None
    for policy, kind in TRIGGERS.items():
        if policy not in retrain_policy(model):
            continue
        alert = next((a for a in alerts if a["kind"] == kind and a["model"] == name), None)
        if alert:
            return DueTraining(name, alert["message"], {"alert": alert["id"], **alert["evidence"]})
    return None
