"""What the dashboard's buttons do, as plain functions that return the message to show.

Requests for work (train, evaluate, a simulated day) are queued in ``runs.db`` for the runner,
as ``m5ops ... --queue`` does; registry changes (create, pause, resume, delete) go through
``m5ops.pipeline.lifecycle``, the same locked path as the CLI. Each function raises an ``M5opsError``
with the reason when it refuses.
"""
from __future__ import annotations

from m5ops.pipeline import lifecycle as management
from m5ops.errors import RegistryError
from m5ops.stores.registry import Registry
from m5ops.stores.runner_state import RunnerState
from m5ops.stores.runs import RunStore
from m5ops.stores.layout import Workspace


def _runner_note(workspace: Workspace) -> str:
    """Nothing when a runner is alive, else how to start one."""
    if RunnerState(workspace.runs_path).alive():
        return ""
    return f"; no runner is alive to start it: run 'm5ops --home {workspace.home} runner'"


def train_now(workspace: Workspace, name: str) -> str:
    """Queue a manual training of ``name`` (a paused model is resumed by it, as with the CLI)."""
    model = Registry(workspace.registry_path).get(name)
    runs = RunStore(workspace.runs_path)
    open_runs = [r for r in runs.queued() + runs.running() if r["task"] == "train" and r.get("model") == name]
    if open_runs:
        raise RegistryError(f"{name} already has a training {open_runs[0]['status']} (run {open_runs[0]['id']});"
                            " wait for it to finish")
    run_id = runs.enqueue("train", model=name, params={"model": name, "manual": True, "actor": "dashboard"})
    resumes = "" if model["schedule"]["active"] else " (a manual training resumes the paused model)"
    return f"queued training of {name} as run {run_id}{resumes}{_runner_note(workspace)}"


def evaluate_all(workspace: Workspace) -> str:
    """Queue an evaluation of every model that has a version."""
    runs = RunStore(workspace.runs_path)
    run_id = runs.enqueue("evaluate", params={"models": None})
    return f"queued evaluation of all models as run {run_id}{_runner_note(workspace)}"


def run_day(workspace: Workspace) -> str:
    """Queue one simulated day (arrival, evaluation, due trainings) now."""
    runs = RunStore(workspace.runs_path)
    run_id = runs.enqueue("tick", params={"days": 1})
    return f"queued a simulated day as run {run_id}{_runner_note(workspace)}"


def pause(workspace: Workspace, name: str) -> str:
    """Pause a model's weekly retraining."""
    management.set_active(workspace, name, False)
    return f"paused {name}: the runner no longer retrains it on schedule"


def resume(workspace: Workspace, name: str) -> str:
    """Resume a model's weekly retraining."""
    management.set_active(workspace, name, True)
    return f"resumed {name}"


def delete(workspace: Workspace, name: str) -> str:
    """Delete a model and its artifacts; its runs, metrics and executed notebooks stay."""
    management.delete_model(workspace, name, actor="dashboard")
    return f"deleted {name}; its runs, metrics and executed notebooks stay"


def create(workspace: Workspace, name: str, kind: str, params: dict, active: bool = True) -> str:
    """Register a new model (validated by name and by its kind's schema)."""
    management.create_model(workspace, name, kind, params, active=active)
    return f"created model {name} ({kind}{'' if active else ', paused'}); the runner trains it on its next day"
