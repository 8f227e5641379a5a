"""Trainings triggered by an open alert: once per cooldown, counted from the model's newest training."""
from __future__ import annotations

import shutil

import pytest

from m5ops.pipeline import lifecycle
from m5ops.pipeline.alerts import refresh_alerts
from m5ops.pipeline.triggers import COOLDOWN_DAYS, due_trainings, newest_training_day
from m5ops.pipeline.workspace_init import InitOptions, init_workspace
from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import MetricStore
from m5ops.stores.registry import Registry
from m5ops.stores.runs import RunStore

TRAINED_ON = 300
DEGRADED = [0.50] * 7 + [0.70] * 7  # evaluations of days 301..314: a week as trained, then 40% worse


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    home = tmp_path_factory.mktemp("triggers") / "ws"
    init_workspace(home, InitOptions(items=1, days=300, subset={"stores": ["CA_1"]}, progress=False))
    return home


@pytest.fixture
def workspace(template, tmp_path):
    """A copy with one on-degradation model whose current version (day 300) degraded, its alert open."""
    shutil.copytree(template, tmp_path / "ws")
    workspace = Workspace(tmp_path / "ws")
    registry = Registry(workspace.registry_path)
    registry.update(lambda data: data["models"].clear())
    lifecycle.create_model(workspace, "reactive", "seasonal_naive", retrain="on-degradation")
    registry.add_version("reactive", _version(TRAINED_ON))
    metrics = MetricStore(workspace.runs_path)
    for day, value in enumerate(DEGRADED, start=TRAINED_ON + 1):
        metrics.record(day, "2011-01-01", "reactive", "v1", {"wrmsse": value}, (day - 27, day))
    raised, _ = refresh_alerts(workspace, ("degradation",))
    assert [a["model"] for a in raised] == ["reactive"]
    return workspace


def _version(day: int, **extra) -> dict:
    return {"sim_date": "2011-01-01", "sim_day": day, "cutoff_day": day - 28, "artifact": "models/x", **extra}


def _due(workspace, day) -> set[str]:
    return {d.model for d in due_trainings(workspace, day)}


def test_the_cooldown_counts_from_the_current_version_when_nothing_newer_was_trained(workspace):
    assert _due(workspace, TRAINED_ON + COOLDOWN_DAYS - 1) == set()
    due = due_trainings(workspace, 314)
    assert [d.model for d in due] == ["reactive"]
    assert due[0].reason == "on-degradation: WRMSSE 0.50 -> 0.70 (+40%) over 7 days" and "alert" in due[0].evidence


def test_a_retrain_rejected_by_the_gate_starts_the_cooldown_so_the_model_is_not_retrained_daily(workspace):
    """The bug: counted from the current version (day 300), a model whose retrains were rejected retrained daily."""
    Registry(workspace.registry_path).add_version("reactive", _version(314, status="rejected"), make_current=False)
    model = Registry(workspace.registry_path).get("reactive")
    assert model["current_version"] == "v1" and model["versions"][-1]["status"] == "rejected"
    assert newest_training_day("reactive", model, RunStore(workspace.runs_path)) == 314
    for day in range(315, 314 + COOLDOWN_DAYS):
        assert _due(workspace, day) == set(), f"retrained on day {day}, {day - 314} day(s) after a rejected retrain"
    assert _due(workspace, 314 + COOLDOWN_DAYS) == {"reactive"}  # the alert still holds: once more, a week later


@pytest.mark.parametrize("status, counts", [("succeeded", True), ("failed", True), ("running", True),
                                            ("interrupted", False), ("cancelled", False)])
def test_a_training_run_in_runs_db_starts_the_cooldown_unless_it_was_cut_short(workspace, status, counts):
    runs = RunStore(workspace.runs_path)
    run = runs.new_run("train", model="reactive", params={"model": "reactive", "day": 316}, trigger="schedule",
                       sim_day=316)
    if status != "running":
        runs.finish(run, status, error=None if status == "succeeded" else f"{status} on purpose")
    assert _due(workspace, 318) == (set() if counts else {"reactive"})
    assert _due(workspace, 316 + COOLDOWN_DAYS) == {"reactive"}


def test_trainings_of_an_earlier_model_of_the_same_name_do_not_count(workspace):
    runs = RunStore(workspace.runs_path)
    run = runs.new_run("train", model="reactive", params={"model": "reactive"}, trigger="schedule", sim_day=316)
    runs.finish(run, "succeeded")
    Registry(workspace.registry_path).update(  # the model re-created after that run
        lambda data: data["models"]["reactive"].update(created="9999-01-01T00:00:00.000+00:00"))
    assert _due(workspace, 318) == {"reactive"}


def test_a_paused_model_is_never_retrained_by_a_trigger(workspace):
    lifecycle.set_active(workspace, "reactive", False)
    assert _due(workspace, 330) == set()
