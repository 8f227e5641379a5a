"""Alerts raised once while their condition lasts and cleared when it ends; triggers; the --on-alert hook."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from m5ops.orchestration.alert_hook import notify
from m5ops.pipeline import lifecycle
from m5ops.pipeline.alerts import degraded_models, refresh_alerts
from m5ops.pipeline.triggers import due_trainings
from m5ops.pipeline.workspace_init import InitOptions, init_workspace
from m5ops.stores.alerts import AlertStore, Condition
from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import MetricStore
from m5ops.stores.registry import Registry
from m5ops.stores.runner_state import RunnerState
from m5ops.stores.runs import RunStore


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    home = tmp_path_factory.mktemp("alerts") / "ws"
    init_workspace(home, InitOptions(items=1, days=300, subset={"stores": ["CA_1"]}, progress=False))
    return home


@pytest.fixture
def workspace(template, tmp_path):
    import shutil

    shutil.copytree(template, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def test_an_alert_is_raised_once_while_its_condition_lasts_and_cleared_when_it_ends(tmp_path):
    store = AlertStore(tmp_path / "runs.db")
    held = Condition("failed-run:train:m", "failed-run", "train-m failed", "m")
    raised, cleared = store.sync([held], ["failed-run"])
    assert [a["key"] for a in raised] == ["failed-run:train:m"] and cleared == []
    assert store.sync([held], ["failed-run"]) == ([], [])  # still holds: not raised again
    assert store.sync([], ["runner-down"]) == ([], [])  # another kind evaluated: left alone
    raised, cleared = store.sync([], ["failed-run"])
    assert raised == [] and [a["state"] for a in cleared] == ["cleared"] and store.open() == []
    again, _ = store.sync([held], ["failed-run"])  # the condition is back: a new alert
    assert len(again) == 1 and again[0]["id"] != cleared[0]["id"] and len(store.history()) == 2


def test_a_failed_run_alerts_until_a_later_run_of_the_same_task_succeeds(workspace):
    runs = RunStore(workspace.runs_path)
    failed = runs.new_run("train", model="lightgbm", params={"model": "lightgbm"}, trigger="schedule")
    runs.finish(failed, "failed", error="MemoryError: boom", output="outputs/x.ipynb")
    raised, _ = refresh_alerts(workspace, ("failed-run",))
    assert len(raised) == 1 and failed in raised[0]["message"] and "MemoryError" in raised[0]["message"]
    assert raised[0]["evidence"]["notebook"] == "outputs/x.ipynb" and raised[0]["model"] == "lightgbm"
    ok = runs.new_run("train", model="lightgbm", params={"model": "lightgbm"}, trigger="schedule")
    runs.finish(ok, "succeeded")
    _, cleared = refresh_alerts(workspace, ("failed-run",))
    assert [a["id"] for a in cleared] == [raised[0]["id"]]


def test_a_run_past_three_times_its_usual_duration_alerts(workspace):
    runs = RunStore(workspace.runs_path)
    for _ in range(3):
        runs.finish(runs.new_run("evaluate", trigger="schedule"), "succeeded")  # usual: under a second
    slow = runs.new_run("evaluate", trigger="schedule")
    assert refresh_alerts(workspace, ("overdue-run",)) == ([], [])
    time.sleep(3.3)  # over 3x the usual duration (counted as at least 1 s)
    raised, _ = refresh_alerts(workspace, ("overdue-run",))
    assert len(raised) == 1 and slow in raised[0]["message"] and "usual" in raised[0]["message"]
    runs.finish(slow, "succeeded")
    assert len(refresh_alerts(workspace, ("overdue-run",))[1]) == 1


def test_a_runner_that_stopped_beating_alerts_and_a_clean_stop_does_not(workspace):
    state = RunnerState(workspace.runs_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state.beat(pid=gone.pid)
    raised, _ = refresh_alerts(workspace, ("runner-down",))
    assert len(raised) == 1 and f"pid {gone.pid}" in raised[0]["message"] and "runner" in raised[0]["message"]
    state.clear_heartbeat(gone.pid)  # a clean stop leaves no heartbeat
    assert len(refresh_alerts(workspace, ("runner-down",))[1]) == 1


def _version_with_scores(workspace, name, trained_day, scores, retrain, every_days=7, active=True):
    """A model whose current version was trained on ``trained_day``, evaluated on the following days."""
    Registry(workspace.registry_path).update(lambda data: data["models"].pop(name, None))
    lifecycle.create_model(workspace, name, "seasonal_naive", retrain=retrain, active=active)
    Registry(workspace.registry_path).update(lambda data: data["models"][name]["schedule"].update(every_days=every_days))
    Registry(workspace.registry_path).add_version(name, {"sim_date": "2011-01-01", "sim_day": trained_day,
                                                        "cutoff_day": trained_day - 28, "artifact": f"models/{name}/v1"})
    metrics = MetricStore(workspace.runs_path)
    for offset, value in enumerate(scores, start=1):
        day = trained_day + offset
        metrics.record(day, "2011-01-01", name, "v1", {"wrmsse": value}, (day - 27, day))


def test_degradation_alerts_then_triggers_one_training_per_cooldown_and_never_a_paused_or_weekly_model(workspace):
    Registry(workspace.registry_path).update(lambda data: data["models"].clear())  # no untrained defaults
    week_ok, week_worse = [0.50] * 7, [0.70] * 7
    _version_with_scores(workspace, "reactive", 300, week_ok + week_worse, "weekly,on-degradation", every_days=60)
    _version_with_scores(workspace, "calendar", 300, week_ok + week_worse, "weekly", every_days=60)
    _version_with_scores(workspace, "paused", 300, week_ok + week_worse, "on-degradation", active=False)
    _version_with_scores(workspace, "steady", 300, week_ok + week_ok, "on-degradation")
    found = degraded_models(workspace)
    assert set(found) == {"reactive", "calendar", "paused"}
    assert found["reactive"]["text"] == "on-degradation: WRMSSE 0.50 -> 0.70 (+40%) over 7 days"
    raised, _ = refresh_alerts(workspace, ("degradation",))
    assert {a["model"] for a in raised} == {"reactive", "calendar", "paused"}
    due = {d.model: d for d in due_trainings(workspace, 314)}
    assert set(due) == {"reactive"} and due["reactive"].reason.startswith("on-degradation: WRMSSE 0.50 -> 0.70")
    assert due_trainings(workspace, 305) == []  # within the cooldown of its version: wait
    lifecycle.set_retrain(workspace, "calendar", "on-degradation")
    assert {d.model for d in due_trainings(workspace, 314)} == {"reactive", "calendar"}


def test_the_on_alert_hook_gets_the_alert_as_json_and_its_failure_is_only_logged(tmp_path, caplog):
    out = tmp_path / "got.json"
    alert = {"id": 7, "kind": "failed-run", "message": "train-m failed", "state": "open"}
    assert notify(f"cat > {out}", alert)
    assert json.loads(out.read_text()) == alert
    assert not notify("exit 3", alert) and "exited 3" in caplog.text
    started = time.monotonic()
    assert not notify("sleep 10", alert, timeout_s=0.5) and time.monotonic() - started < 5
    assert "ran past 0.5 s" in caplog.text
    assert notify(None, alert)  # no hook: nothing to do


def test_the_cli_lists_alerts_and_changes_a_retraining_policy(workspace):
    runs = RunStore(workspace.runs_path)
    runs.finish(runs.new_run("simulate_day", trigger="schedule"), "failed", error="OSError: disk full")
    m5ops = [sys.executable, "-m", "m5ops.cli", "--home", str(workspace.home)]
    listed = json.loads(subprocess.run([*m5ops, "alerts", "--json"], capture_output=True, text=True, check=True).stdout)
    assert [a["kind"] for a in listed] == ["failed-run"] and "disk full" in listed[0]["message"]
    changed = subprocess.run([*m5ops, "set-retrain", "lightgbm", "weekly,on-drift"], capture_output=True, text=True)
    assert changed.returncode == 0 and Registry(workspace.registry_path).get("lightgbm")["schedule"]["retrain"] == \
        ["weekly", "on-drift"]
    refused = subprocess.run([*m5ops, "set-retrain", "lightgbm", "daily"], capture_output=True, text=True)
    assert refused.returncode == 2 and "on-degradation" in refused.stderr


@pytest.mark.slow
def test_the_runner_hands_a_failed_run_alert_to_the_on_alert_command(workspace, tmp_path):
    import os
    import signal

    import browser as B

    got = tmp_path / "alerts.jsonl"
    lifecycle_env = B.plugin_env()
    B.m5ops(workspace.home, "create", "broken", "--kind", "test_failing", "--paused", env=lifecycle_env)
    with open(tmp_path / "runner.log", "wb") as log:
        runner = subprocess.Popen([sys.executable, "-m", "m5ops.cli", "--home", str(workspace.home), "runner",
                                   "--day-seconds", "3600", "--retries", "0", "--on-alert", f"cat >> {got}; echo >> {got}"],
                                  stdout=log, stderr=subprocess.STDOUT, env=lifecycle_env)
    try:
        B.m5ops(workspace.home, "train", "broken", "--queue", env=lifecycle_env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "train-broken failed" not in (got.read_text() if got.exists() else ""):
            time.sleep(0.5)
        alerts = [json.loads(line) for line in got.read_text().splitlines() if line.strip()]
        failed = [a for a in alerts if a["kind"] == "failed-run"]
        assert failed and failed[0]["state"] == "open" and failed[0]["model"] == "broken", alerts
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(60)
    assert runner.returncode == 0, (tmp_path / "runner.log").read_text()[-2000:]
    assert not os.path.exists(f"/proc/{runner.pid}")
