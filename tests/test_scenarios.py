"""Demand scenarios: stored safely, applied to arriving days (real and simulated), and watched by monitoring."""
from __future__ import annotations

import multiprocessing
import shutil

import nbformat
import numpy as np
import pytest

from m5ops.cli.main import main as m5ops_main
from m5ops.data.store import DayStore
from m5ops.orchestration import jobs
from m5ops.pipeline import lifecycle, tasks
from m5ops.pipeline.alerts import MODEL_ALERTS, refresh_alerts
from m5ops.pipeline.arrival import arrive_next_day, take_back
from m5ops.pipeline.scenarios import add_scenario, stochastic_round
from m5ops.pipeline.triggers import due_trainings
from m5ops.pipeline.workspace_init import InitOptions, init_workspace
from m5ops.stores.alerts import AlertStore
from m5ops.stores.audit import AuditLog
from m5ops.stores.holdback import Holdback
from m5ops.stores.layout import Workspace
from m5ops.stores.registry import Registry
from m5ops.stores.runs import RunStore
from m5ops.stores.scenarios import ScenarioStore
from m5ops.stores.status import workspace_status


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small synthetic workspace: 1 item per department in every store (70 series), 56 real days held back."""
    home = tmp_path_factory.mktemp("scenarios") / "ws"
    init_workspace(home, InitOptions(items=1, days=300, progress=False))
    return home


@pytest.fixture
def workspace(template, tmp_path):
    shutil.copytree(template, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def _today(workspace) -> int:
    return DayStore(workspace.data_dir).last_day()


def _of(workspace, column: str, value: str) -> np.ndarray:
    return DayStore(workspace.data_dir).series()[column].astype(str).to_numpy() == value


# --- rounding ------------------------------------------------------------------------------------

def test_stochastic_rounding_gives_whole_units_whose_mean_is_the_scaled_value():
    rng = np.random.default_rng(0)
    values = np.repeat([0.0, 1.6, 3.2, 7.0], 20_000)
    rounded = stochastic_round(values, rng)
    assert rounded.dtype == np.int64 and set(np.unique(rounded[:20_000])) == {0}
    means = rounded.reshape(4, -1).mean(axis=1)
    assert np.allclose(means, [0.0, 1.6, 3.2, 7.0], atol=0.02)  # round-half-even would give 2.0 for 1.6
    assert set(np.unique(rounded[20_000:40_000])) == {1, 2} and set(np.unique(rounded[-20_000:])) == {7}


# --- applying them -------------------------------------------------------------------------------

def test_a_scenario_multiplies_only_its_slice_of_a_held_back_real_day_and_is_recorded_with_it(workspace):
    day = _today(workspace) + 1
    scenario = add_scenario(workspace, day, None, 1.6, category="FOODS")
    arrival = arrive_next_day(workspace)
    real = Holdback(workspace.holdback_path).day(day)[0].astype(np.int64)
    stored = arrival.sales
    foods = _of(workspace, "cat_id", "FOODS")
    assert arrival.source == "replay" and stored.dtype.kind == "i"
    assert (stored[~foods] == real[~foods]).all()  # outside the slice: exactly the real day
    assert (np.abs(stored[foods] - 1.6 * real[foods]) < 1).all()  # inside: x1.6, rounded to a neighbouring unit
    assert [s["scenario"] for s in arrival.scenarios] == [scenario.id]
    assert arrival.scenarios[0]["series"] == foods.sum() and arrival.scenarios[0]["units_before"] == real[foods].sum()
    assert arrival.summary()["scenarios"] == scenario.label() == f"#{scenario.id} FOODS x1.60 from d_{day}"
    on_disk, _ = DayStore(workspace.data_dir).read_matrix(day, day)
    assert (on_disk[:, 0] == stored).all()
    store = ScenarioStore(workspace.runs_path)
    assert [(d, s.id) for d, s in store.applied_between(day, day)] == [(day, scenario.id)]
    take_back(workspace, day)  # an arrival taken back takes its record with it
    assert store.applied_between(day, day) == [] and _today(workspace) == day - 1


def test_overlapping_scenarios_multiply_and_days_outside_them_or_after_a_removal_are_left_alone(workspace):
    day = _today(workspace) + 1
    food = add_scenario(workspace, day, day + 1, 2.0, category="FOODS")
    ca1 = add_scenario(workspace, day, None, 0.5, store="CA_1")
    add_scenario(workspace, day + 5, None, 3.0)  # not yet
    real = Holdback(workspace.holdback_path).day(day)[0].astype(np.int64)
    arrival = arrive_next_day(workspace)
    foods, ca_1 = _of(workspace, "cat_id", "FOODS"), _of(workspace, "store_id", "CA_1")
    assert [s["scenario"] for s in arrival.scenarios] == [food.id, ca1.id]
    assert (arrival.sales[foods & ca_1] == real[foods & ca_1]).all()  # 2.0 x 0.5: whole units stay as they were
    assert (arrival.sales[foods & ~ca_1] == 2 * real[foods & ~ca_1]).all()
    ScenarioStore(workspace.runs_path).remove(ca1.id)
    arrive_next_day(workspace)  # day + 1: FOODS only
    arrival = arrive_next_day(workspace)  # day + 2: after FOODS' last day, before the x3
    assert arrival.scenarios == [] and (arrival.sales == Holdback(workspace.holdback_path).day(day + 2)[0]).all()


@pytest.mark.slow  # 28 simulated arrivals, each reading its 244 days of history: 17-35 s here
def test_a_lasting_scenario_on_simulated_days_shifts_them_once_instead_of_compounding(template, tmp_path):
    """The simulator reads the stored (scaled) days; it is given them with the factors divided out."""
    homes = {}
    for name in ("shifted", "plain"):
        homes[name] = Workspace(tmp_path / name)
        shutil.copytree(template, homes[name].home)
        Holdback(homes[name].holdback_path).path.unlink()  # every arriving day is simulated
    first = _today(homes["shifted"]) + 1
    add_scenario(homes["shifted"], first, None, 2.0)
    days = 14  # compounding would have lifted the simulator's 28-day level by half by then: x3, not x2
    totals = {name: np.array([arrive_next_day(ws).sales.sum() for _ in range(days)]) for name, ws in homes.items()}
    assert all(len(ScenarioStore(homes["shifted"].runs_path).applied_between(d, d)) == 1
               for d in range(first, first + days))
    ratio_first = totals["shifted"][:7].sum() / totals["plain"][:7].sum()
    ratio_last = totals["shifted"][-7:].sum() / totals["plain"][-7:].sum()
    assert 1.7 < ratio_first < 2.3 and 1.7 < ratio_last < 2.3, (ratio_first, ratio_last)


# --- the store -----------------------------------------------------------------------------------

def _add_many(path: str, n: int) -> list[int]:
    store = ScenarioStore(path)
    return [store.add(2000, None, 1.1, category="FOODS").id for _ in range(n)]


def test_scenarios_added_by_concurrent_processes_all_get_their_own_id(tmp_path):
    path = str(tmp_path / "runs.db")
    ScenarioStore(path)  # made and migrated once, before the writers start
    with multiprocessing.get_context("fork").Pool(3) as pool:
        ids = [i for batch in pool.starmap(_add_many, [(path, 25)] * 3) for i in batch]
    assert sorted(ids) == list(range(1, 76)) and len(ScenarioStore(path).scenarios()) == 75


# --- the command ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--factor", "1.6", "--store", "NY_1"], "unknown --store 'NY_1'; this workspace's are: CA_1, CA_2"),
    (["--factor", "1.6", "--category", "FOOD"], "this workspace's are: FOODS, HOBBIES, HOUSEHOLD"),
    (["--factor", "1.6", "--department", "FOODS_9"], "FOODS_1, FOODS_2, FOODS_3, HOBBIES_1"),
    (["--factor", "0"], "--factor 0.0 must be a number > 0"),
    (["--factor", "-1.5"], "must be a number > 0"),
    (["--factor", "nan"], "must be a number > 0"),
    (["--factor", "2", "--to-day", "300"], "--to-day 300 is before --from-day 310"),
    (["--factor", "1.5", "--category", "FOODS", "--department", "HOBBIES_1"], "no series of this workspace matches"),
])
def test_scenario_add_refuses_what_cannot_apply_with_status_2_and_the_fix(workspace, capsys, args, message):
    status = m5ops_main(["--home", str(workspace.home), "scenario", "add", "--from-day", "310", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert ScenarioStore(workspace.runs_path).scenarios() == []


def test_scenario_add_list_remove_through_the_command(workspace, capsys):
    home = ["--home", str(workspace.home)]
    today = _today(workspace)
    assert m5ops_main([*home, "scenario", "add", "--from-day", f"d_{today - 3}", "--factor", "1.6",
                       "--category", "FOODS"]) == 0
    assert f"the first day it changes is d_{today + 1}" in capsys.readouterr().out  # past days are never rewritten
    assert m5ops_main([*home, "scenario", "add", "--from-day", str(today - 9), "--to-day", str(today),
                       "--factor", "2"]) == 2
    assert "have all arrived already" in capsys.readouterr().err
    assert m5ops_main([*home, "scenario", "list"]) == 0 and "#1 FOODS x1.60" in capsys.readouterr().out
    assert workspace_status(workspace).as_dict()["scenarios"] == [f"#1 FOODS x1.60 from d_{today - 3}"]
    assert m5ops_main([*home, "status"]) == 0
    assert f"scenarios: #1 FOODS x1.60 from d_{today - 3}" in capsys.readouterr().out
    assert m5ops_main([*home, "scenario", "remove", "1"]) == 0 and "removed" in capsys.readouterr().out
    assert m5ops_main([*home, "scenario", "remove", "1"]) == 2
    assert "no active scenario #1 (it was removed already)" in capsys.readouterr().err
    assert m5ops_main([*home, "scenario", "list"]) == 0 and "no active scenarios" in capsys.readouterr().out
    assert m5ops_main([*home, "scenario", "list", "--all"]) == 0 and "removed" in capsys.readouterr().out


# --- watching monitoring work --------------------------------------------------------------------

def _train(workspace, name: str, day: int, reason: str) -> None:
    """A training as the runner's tick starts it: a recorded run (its reason in the params), the task, the end."""
    params = {"model": name, "day": day, "reason": reason}
    run_id = jobs.start_run(workspace, "train", params, trigger="schedule")
    tasks.train(str(workspace.home), run_id, name, reason=reason, day=day)
    RunStore(workspace.runs_path).finish(run_id, "succeeded")


@pytest.mark.slow
def test_a_foods_shift_on_the_embedded_default_retrains_the_on_degradation_model_after_an_alert_while_weekly_waits(
        tmp_path):
    """+60% FOODS from a week after training, on the default synthetic workspace (210 series): each day the
    tick's steps (arrival, evaluation, alerts, the trainings due) by their task functions."""
    workspace = init_workspace(tmp_path / "ws", InitOptions(progress=False))
    for name in list(Registry(workspace.registry_path).models()):
        lifecycle.delete_model(workspace, name)
    # the same kind twice: one difference, the retraining policy (every 21 days, so its week comes after the alert)
    lifecycle.create_model(workspace, "reactive", "moving_average", retrain="on-degradation")
    lifecycle.create_model(workspace, "calendar", "moving_average", retrain="weekly")
    Registry(workspace.registry_path).update(lambda data: data["models"]["calendar"]["schedule"].update(every_days=21))
    trained_on = _today(workspace)
    shift_from = trained_on + 8  # after the week that measures each model as trained
    add_scenario(workspace, shift_from, None, 1.6, category="FOODS")
    trainings, raised = [], []
    for day in range(trained_on, trained_on + 22):
        if day > trained_on:
            arrival = tasks.simulate_day(str(workspace.home), "scenario-test")
            assert bool(arrival.scenarios) == (day >= shift_from) and arrival.day == day
            tasks.evaluate(str(workspace.home), "scenario-test")
            raised += [(day, a) for a in refresh_alerts(workspace, MODEL_ALERTS)[0]]
        for due in due_trainings(workspace, day):
            _train(workspace, due.model, day, due.reason)
            trainings.append((day, due.model, due.reason))
    assert [(d, m) for d, m, _ in trainings if d == trained_on] == [(trained_on, "reactive"), (trained_on, "calendar")]
    later = [(d, m, r) for d, m, r in trainings if d > trained_on]
    reactive = [(d, r) for d, m, r in later if m == "reactive"]
    alerted = {a["model"]: d for d, a in raised if a["kind"] == "degradation"}
    # the on-degradation model: an alert first, then one training, within a week of the shift
    assert set(alerted) == {"reactive", "calendar"} and shift_from < alerted["reactive"] <= shift_from + 7
    assert len(reactive) == 1 and reactive[0][0] == alerted["reactive"], trainings
    assert reactive[0][1].startswith("on-degradation: WRMSSE ") and "over 7 days" in reactive[0][1]
    alert = next(a for _, a in raised if a["model"] == "reactive")
    run = RunStore(workspace.runs_path).runs(limit=1, model="reactive", task="train")[0]
    assert alert["raised_at"] < run["created_at"] and run["params"]["reason"] == alert["message"] == reactive[0][1]
    entry = AuditLog(workspace.runs_path).last(model="reactive")  # the gate's entry on the triggered version
    assert entry.version == "v2" and entry.evidence["trained_because"] == reactive[0][1]
    # the weekly model, degraded alike and alerted, waits for its week
    assert [(d, m) for d, m, _ in later if m == "calendar"] == [(trained_on + 21, "calendar")]
    assert all(r == "weekly: every 21 days" for _, m, r in later if m == "calendar")
    refresh_alerts(workspace, MODEL_ALERTS)
    assert any(a["model"] == "calendar" and a["state"] == "cleared" for a in AlertStore(workspace.runs_path).history(200)
               if a["kind"] == "degradation")  # cleared by its weekly training


def test_the_arrival_notebook_shows_the_scenarios_that_applied(workspace):
    day = _today(workspace) + 1
    scenario = add_scenario(workspace, day, None, 1.6, department="FOODS_3")
    run = jobs.run_task(workspace, "simulate_day", {}, trigger="manual")
    assert run["status"] == "succeeded", run["error"]
    executed = nbformat.read(run["output"], as_version=4)
    shown = "".join(str(out.get("data", {}).get("text/plain", "")) for cell in executed.cells
                    for out in cell.get("outputs", []))
    assert scenario.label() in shown and f"#{scenario.id} FOODS_3 x1.60" in shown
    assert [d for d, _ in ScenarioStore(workspace.runs_path).applied_between(day, day)] == [day]
