"""The gate on new versions: its rule, and a deliberately bad version rejected while the current one serves on."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "plugins"))
import browser as B  # noqa: E402

from m5ops.pipeline import lifecycle, serving  # noqa: E402
from m5ops.pipeline.gate import judge  # noqa: E402
from m5ops.pipeline.modeling import WorkspaceData, train_version  # noqa: E402
from m5ops.stores.audit import AuditLog  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402
from m5ops.stores.serving import ServingStore  # noqa: E402

WINDOW = (93, 120)


@pytest.fixture(autouse=True, scope="module")
def toggled_kind():
    """The test kinds registered in this process for this module only (other modules count the kinds)."""
    import importlib

    from m5ops.models import model_kinds

    saved = dict(model_kinds._kinds)
    plugin = importlib.import_module("m5ops_test_kinds")
    for cls in (plugin.FailingModel, plugin.GatedModel, plugin.ToggledModel):
        model_kinds.register(cls)
    yield
    model_kinds._kinds.clear()
    model_kinds._kinds.update(saved)


@pytest.mark.parametrize("candidate, incumbent, tolerance, incumbent_version, force, accepted, action, words", [
    (0.9, None, 0.10, None, False, True, "accepted", "first version"),
    (1.05, 1.0, 0.10, "v1", False, True, "accepted", "is within 10%"),
    (1.10, 1.0, 0.10, "v1", False, True, "accepted", "limit 1.1"),  # exactly at the limit passes
    (1.11, 1.0, 0.10, "v1", False, False, "rejected", "v1 stays current"),
    (1.11, 1.0, 0.20, "v1", False, True, "accepted", "is within 20%"),
    (0.70, 1.0, 0.00, "v1", False, True, "accepted", "is within 0%"),
    (5.00, 1.0, 0.10, "v1", True, True, "forced", "forced (--force) although"),
    (0.95, 1.0, 0.10, "v1", True, True, "accepted", "is within"),  # forced, but it passed anyway
    (math.nan, 1.0, 0.10, "v1", False, False, "rejected", "could not be computed"),
    (None, 1.0, 0.10, "v1", False, False, "rejected", "could not be computed"),
    (1.2, math.inf, 0.10, "v1", False, True, "accepted", "has no finite WRMSSE"),
])
def test_the_gate_rule(candidate, incumbent, tolerance, incumbent_version, force, accepted, action, words):
    verdict = judge(candidate, incumbent, tolerance, incumbent_version=incumbent_version, window=WINDOW, force=force)
    assert (verdict.accepted, verdict.action) == (accepted, action)
    assert words in verdict.reason, verdict.reason
    assert verdict.status == ("current" if accepted else "rejected")
    evidence = verdict.evidence()
    assert evidence["window"] == list(WINDOW) and evidence["tolerance"] == tolerance
    assert evidence["incumbent_version"] == incumbent_version and evidence["verdict"] == action


@pytest.fixture
def toggled(tmp_path):
    """A workspace with one toggled model (good until the file ``bad`` exists), made through the CLI."""
    home = B.make_workspace(tmp_path / "ws", {}, items=1, days=176)
    bad = tmp_path / "bad"
    B.m5ops(home, "create", "tog", "--kind", "test_toggled", "--param", f"bad_if={bad}", env=B.plugin_env())
    return home, bad


def train(home, *args):
    """``m5ops train tog ...`` as a user runs it, with the test kinds loaded."""
    return B.m5ops(home, "train", "tog", *args, env=B.plugin_env()).stdout


@pytest.mark.slow
def test_a_bad_version_is_rejected_the_current_one_keeps_serving_and_force_overrides(toggled):
    home, bad = toggled
    workspace = Workspace(home)
    assert "tog v1 is current" in train(home)
    B.m5ops(home, "evaluate", env=B.plugin_env())
    assert serving.serving_model(workspace) == ("tog", "v1")

    bad.write_text("make the next fit bad")
    out = train(home)
    assert "tog v2 was rejected; v1 stays current" in out, out
    model = Registry(workspace.registry_path).get("tog")
    v1, v2 = model["versions"]
    assert model["current_version"] == "v1" and (v1["status"], v2["status"]) == ("current", "rejected")
    gate = v2["gate"]
    assert gate["verdict"] == "rejected" and gate["incumbent_version"] == "v1" and gate["tolerance"] == 0.10
    assert gate["candidate"] > 10 * gate["incumbent"] > 0  # a constant of 1000 units a day is far worse
    assert gate["window"] == list(WorkspaceData.open(home).split.test_range())
    assert v2["lineage"]["backtest"]["wrmsse"] == gate["candidate"]
    assert serving.serving_model(workspace) == ("tog", "v1")  # v1 keeps serving
    shown = json.loads(B.m5ops(home, "models", "--json").stdout)["models"]["tog"]["versions"]
    assert [v["status"] for v in shown] == ["serving", "rejected"]
    rejected = AuditLog(workspace.runs_path).last(actions=("rejected",))
    assert (rejected.actor, rejected.model, rejected.version, rejected.previous_version) == ("cli", "tog", "v2", "v1")
    assert rejected.evidence["candidate"] == gate["candidate"] and rejected.evidence["incumbent"] == gate["incumbent"]

    out = train(home, "--force")
    assert "tog v3 is current (forced past the gate)" in out, out
    model = Registry(workspace.registry_path).get("tog")
    assert model["current_version"] == "v3" and [v["status"] for v in model["versions"]] == \
        ["retired", "rejected", "current"]
    assert model["versions"][2]["previous"] == "v1" and model["versions"][2]["gate"]["forced"] is True
    assert serving.serving_model(workspace) == ("tog", "v3")  # the serving model's new version serves at once
    entries = AuditLog(workspace.runs_path).entries(model="tog")
    assert [(e.action, e.version, e.actor) for e in entries] == [("forced", "v3", "cli"), ("rejected", "v2", "cli"),
                                                                 ("accepted", "v1", "cli")]


def test_a_scheduled_training_is_gated_with_the_models_own_tolerance(tmp_path):
    home = B.make_workspace(tmp_path / "ws", {}, items=1, days=176)
    workspace, bad = Workspace(home), tmp_path / "bad"
    lifecycle.create_model(workspace, "tog", "test_toggled", {"bad_if": str(bad)})
    data = WorkspaceData.open(home)
    assert train_version(data, "tog").verdict.action == "accepted"
    ServingStore(workspace.runs_path).set({"gate_tolerance": "25%"}, model="tog")
    bad.write_text("bad")
    trained = train_version(data, "tog", reason="weekly: every 7 days")  # the runner's way: actor schedule
    assert trained.verdict.action == "rejected" and trained.verdict.tolerance == 0.25
    assert trained.record["status"] == "rejected" and trained.record["gate"]["tolerance"] == 0.25
    entry = AuditLog(workspace.runs_path).last(actions=("rejected",))
    assert entry.actor == "schedule" and "25%" in entry.reason
    assert entry.evidence["trained_because"] == trained.record["lineage"]["trained_because"] == "weekly: every 7 days"
    assert Registry(workspace.registry_path).get("tog")["current_version"] == "v1"
    assert not Registry(workspace.registry_path).due_for_training(data.split.today)  # not retried every day


def test_a_version_whose_gate_registration_fails_leaves_no_artifact(tmp_path, monkeypatch):
    home = B.make_workspace(tmp_path / "ws", {"naive": "seasonal_naive"}, items=1, days=176)
    data = WorkspaceData.open(home)
    train_version(data, "naive")

    def refuse(*args, **kwargs):
        raise RuntimeError("registry unwritable")
    monkeypatch.setattr(Registry, "add_version", refuse)
    with pytest.raises(RuntimeError, match="unwritable"):
        train_version(data, "naive")
    assert sorted(p.name for p in (data.workspace.models_dir / "naive").iterdir()) == ["v1"]
    assert [e.version for e in AuditLog(data.workspace.runs_path).entries()] == ["v1"]
