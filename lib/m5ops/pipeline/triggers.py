"""Which trainings a tick starts: the calendar's (weekly) and those an open alert triggers.

A model retrained ``on-degradation`` or ``on-drift`` is trained when such an alert is open for
it, once per cooldown (default 7 simulated days since its newest training), so a lasting shift
retrains it once, not daily. The newest training is any version, accepted or rejected by the
gate, or any training run that ran or runs (not one interrupted or cancelled): a retrain the gate
keeps rejecting leaves the current version old, and counting from that would retrain the model
every day. A paused model is never retrained by a trigger.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from m5ops.stores.alerts import AlertStore
from m5ops.stores.layout import Workspace
from m5ops.stores.registry import Registry, current_version, is_due, retrain_policy
from m5ops.stores.runs import RunStore

COOLDOWN_DAYS = 7
RECENT_TRAININGS = 20  # training runs of a model looked at for its newest training
TRAINED = ("running", "succeeded", "failed")  # runs that trained (an interrupted or cancelled one was cut short)
log = logging.getLogger("m5ops.triggers")
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
    runs = RunStore(workspace.runs_path)
    due = []
    for name, model in models.items():
        if not model["schedule"]["active"]:
            continue
        if is_due(model, today):
            first = current_version(model) is None
            due.append(DueTraining(name, "first version" if first else f"weekly: every {model['schedule']['every_days']} days"))
            continue
        triggered = _triggered(name, model, alerts, today, cooldown_days, runs)
        if triggered:
            due.append(triggered)
    return due


def newest_training_day(name: str, model: dict, runs: RunStore) -> int | None:
    """The simulated day of the model's newest training: a version (accepted or rejected) or a run."""
    days = [v["sim_day"] for v in model["versions"] if v.get("sim_day") is not None]
    for run in runs.runs(limit=RECENT_TRAININGS, model=name, task="train", status=TRAINED):
        if run["created_at"] >= model["created"]:  # not a training of an earlier model of that name
            day = run.get("sim_day") if run.get("sim_day") is not None else run["params"].get("day")
            if day is not None:
                days.append(int(day))
    return max(days, default=None)


def _triggered(name: str, model: dict, alerts: list[dict], today: int, cooldown_days: int,
               runs: RunStore) -> DueTraining | None:
    """The trigger that makes ``model`` due today, if any (its policy, an open alert, the cooldown over)."""
    if current_version(model) is None:
        return None  # never trained (or nothing accepted yet): the calendar's first version comes first
    alert = next((a for policy, kind in TRIGGERS.items() if policy in retrain_policy(model)
                  for a in alerts if a["kind"] == kind and a["model"] == name), None)
    if alert is None:
        return None
    newest = newest_training_day(name, model, runs)
    if newest is not None and today - newest < cooldown_days:
        log.debug("%s: %s, but its newest training was on day %d: it waits for the %d-day cooldown", name,
                 alert["message"], newest, cooldown_days)
        return None
    return DueTraining(name, alert["message"], {"alert": alert["id"], **alert["evidence"]})
