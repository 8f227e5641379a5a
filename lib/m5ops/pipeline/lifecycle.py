"""Managing models: create, pause, resume, delete; the same locked path for the CLI and the dashboard."""
from __future__ import annotations

import logging
import shutil

from m5ops.models import get_kind, kinds
from m5ops.pipeline import serving
from m5ops.stores.registry import Registry, check_name, parse_retrain
from m5ops.stores.runs import RunStore
from m5ops.stores.serving import ServingStore
from m5ops.stores.layout import Workspace

log = logging.getLogger("m5ops.pipeline.lifecycle")
DEFAULT_MODELS = {
    "lightgbm": "lightgbm",
    "hist-gb": "hist_gb",
    "seasonal-naive": "seasonal_naive",
    "moving-average": "moving_average",
}


def create_model(workspace: Workspace, name: str, kind: str, params: dict | None = None, active: bool = True,
                 retrain: list[str] | str | None = None) -> dict:
    """Register a model after validating its name, its parameters (the kind's schema) and its retraining policy."""
    check_name(name)
    validated = get_kind(kind).schema.validate(params or {})
    policies = parse_retrain(retrain) if retrain else None
    record = Registry(workspace.registry_path).add_model(name, kind, validated, active=active, retrain=policies)
    log.info("created model %s (%s)", name, kind)
    return record


def set_retrain(workspace: Workspace, name: str, retrain: list[str] | str) -> dict:
    """Change how a model is retrained: weekly, on degradation, on drift, or a combination."""
    record = Registry(workspace.registry_path).set_retrain(name, parse_retrain(retrain))
    log.info("model %s now retrains %s", name, ",".join(record["schedule"]["retrain"]))
    return record


def set_active(workspace: Workspace, name: str, active: bool) -> dict:
    """Pause (False) or resume (True) a model's weekly retraining."""
    record = Registry(workspace.registry_path).set_active(name, active)
    log.info("%s model %s", "resumed" if active else "paused", name)
    return record


def delete_model(workspace: Workspace, name: str, actor: str = "cli") -> dict:
    """Remove a model and its artifacts; its runs, metrics and executed notebooks stay.

    Deleting the model in production hands production to the best challenger (``serving.hand_over``),
    under the serving lock, and the audit log says so.
    """
    registry = Registry(workspace.registry_path)
    registry.get(name)  # an unknown name is refused before any store is opened: nothing changes
    store = ServingStore(workspace.runs_path)
    with store.locked():
        was = serving.resolve(workspace)
        record = registry.remove_model(name)
        store.clear_model(name)
        if was is not None and was.model == name:
            serving.hand_over(workspace, name, was, actor=actor)
    cancelled = RunStore(workspace.runs_path).cancel_queued_for_model(name)
    shutil.rmtree(workspace.models_dir / name, ignore_errors=True)
    log.info("deleted model %s (%d queued request(s) cancelled)", name, cancelled)
    return record


def register_default_models(workspace: Workspace) -> None:
    """One model of each kind with default parameters (at init)."""
    Registry.create(workspace.registry_path)
    for name, kind in DEFAULT_MODELS.items():
        if kind in kinds():
            create_model(workspace, name, kind)
