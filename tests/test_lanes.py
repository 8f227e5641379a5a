"""The runner's lanes: short runs beside a training, one training per model, one arrival at a time, tick order.

Real runner processes on the tiny workspaces of test_runner.py (its fixtures and helpers), and the
gated test kind, whose training waits while a gate file exists.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from m5ops.errors import RunnerError, StoreError
from m5ops.orchestration import executor
from m5ops.orchestration.lanes import SHORT, TRAINING, Job, Lane, Lanes, make_lanes
from m5ops.orchestration.scheduling import RunnerSettings
from m5ops.pipeline import lifecycle as management
from m5ops.stores.registry import Registry
from m5ops.stores.runner_state import RunnerState
from m5ops.stores.runs import RunStore
from test_runner import (  # noqa: F401  (fixtures: template, workspace, start_runner, test_kinds)
    ENV, RUN_RUNNER, add_model, arrive, dead, m5ops, runs_of, start_runner, template, test_kinds, today,
    versions, wait_for, workspace,
)

START_WITHIN_S = 1.5  # the issue's target for a queued short run while a training runs


def interval(run: dict) -> tuple[datetime, datetime]:
    """When a finished run started and ended."""
    return datetime.fromisoformat(run["started_at"]), datetime.fromisoformat(run["finished_at"])


def overlap(a: dict, b: dict) -> bool:
    """Whether two finished runs executed at the same time."""
    (a0, a1), (b0, b1) = interval(a), interval(b)
    return a0 < b1 and b0 < a1


def start_delay(run: dict) -> float:
    """Seconds from a request's queueing to its start."""
    return (datetime.fromisoformat(run["started_at"]) - datetime.fromisoformat(run["created_at"])).total_seconds()


def far_schedule() -> str:
    """An --at whose next tick is 23 hours away: no scheduled tick during the test."""
    return (datetime.now() - timedelta(hours=1)).strftime("%H:%M")


# -- the rules and the settings: no processes -----------------------------------------------------
def job(task: str, model: str | None = None) -> Job:
    return Job(task, task, lambda: None, model=model)


@pytest.mark.parametrize("candidate, running, lane, allowed", [
    (job("evaluate"), [job("train", "m")], SHORT, True),             # a short run beside a training
    (job("evaluate", "m"), [job("train", "m")], SHORT, True),        # even of the model that trains
    (job("train", "m"), [job("evaluate")], SHORT, False),            # trainings never take the short lane
    (job("evaluate"), [], TRAINING, False),                          # nor short runs a training lane
    (job("train", "m"), [job("train", "m")], TRAINING, False),       # never two trainings of one model
    (job("train", "n"), [job("train", "m")], TRAINING, True),        # two models: side by side (--workers 3)
    (job("simulate_day"), [job("simulate_day")], SHORT, False),      # never two arrivals
    (job("train", "m"), [job("simulate_day")], TRAINING, False),     # a training pins its day: not mid-arrival
    (job("simulate_day"), [job("train", "m")], SHORT, True),         # an arrival beside a training
])
def test_the_lane_rules(candidate, running, lane, allowed):
    lanes = {SHORT: Lane("short", frozenset({SHORT})), TRAINING: Lane("training-1", frozenset({TRAINING}))}
    assert Lanes.may_start(candidate, lanes[lane], running) is allowed


def test_workers_make_one_short_lane_and_the_rest_for_trainings():
    assert [(lane.name, sorted(lane.kinds)) for lane in make_lanes(1)] == [("all", [SHORT, TRAINING])]
    assert [(lane.name, sorted(lane.kinds)) for lane in make_lanes(3)] == [
        ("short", [SHORT]), ("training-1", [TRAINING]), ("training-2", [TRAINING])]
    assert RunnerSettings().workers == 2 and RunnerSettings().describe_lanes() == "1 for trainings, 1 for the rest"


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_below_one_are_refused_saying_the_fix(workspace, workers):
    with pytest.raises(RunnerError, match=rf"--workers {workers} is not a number of lanes: use 2"):
        RunnerSettings(workers=workers)
    for command in ([sys.executable, str(RUN_RUNNER), "--home", str(workspace.home)],
                    [sys.executable, "-m", "m5ops.cli", "--home", str(workspace.home), "runner"]):
        done = subprocess.run([*command, "--workers", str(workers)], capture_output=True, text=True, env=ENV,
                              timeout=120)
        assert done.returncode == 2 and f"--workers {workers} is not a number of lanes" in done.stderr, done.stderr
    assert RunStore(workspace.runs_path).runs() == []  # refused before anything ran


def test_a_stop_drops_the_jobs_no_lane_started():
    stop, ran, dropped = threading.Event(), [], []
    gate = threading.Event()
    with Lanes(2, stop, queued=list, poll_s=0.05) as lanes:
        lanes.submit(Job("train", "first", lambda: (ran.append("first"), gate.wait(10)), model="m"))
        wait_for(lambda: lanes.running(), 5, "the first training to start")
        lanes.submit(Job("train", "second", lambda: ran.append("second"), model="m",
                         drop=lambda: dropped.append("second")))
        stop.set()
        gate.set()
    assert ran == ["first"] and dropped == ["second"]
    assert not any(thread.name.startswith("m5ops-lane") for thread in threading.enumerate())


def fake_run(done: list, status_of=lambda task: "succeeded"):
    """A stand-in for ``Work.run`` that records the task and returns a finished run (no notebooks)."""
    def run(task, params, trigger, run_id=None):
        done.append((task, params.get("model"), params.get("day")))
        return {"id": f"run-{len(done)}", "task": task, "status": status_of(task)}
    return run


def test_a_tick_runs_its_steps_in_order_then_the_trainings_due_at_its_day(workspace, monkeypatch):
    from m5ops.orchestration import ticks
    from m5ops.orchestration.work import Work

    add_model(workspace, "naive", "seasonal_naive")  # never trained: due
    add_model(workspace, "paused", "seasonal_naive", active=False)
    work, done, decided = Work(workspace, RunnerSettings(), threading.Event()), [], []
    monkeypatch.setattr(work, "run", fake_run(done))
    steps = [*ticks.TICK_STEPS, ticks.Step("decision", call=lambda w: decided.append(len(done)))]
    monkeypatch.setattr(ticks, "TICK_STEPS", steps)
    runs = work.tick("manual")
    issue = [("issue_forecast", None, None)] if "issue_forecast" in executor.TASKS else []  # once registered
    assert done == [("simulate_day", None, None), ("evaluate", None, None), *issue, ("train", "naive", today(workspace))]
    assert decided == [len(done) - 1] and len(runs) == len(done) and not work.ticking()


def test_a_failed_arrival_or_a_broken_step_ends_the_tick_and_the_next_one_begins(workspace, monkeypatch):
    from m5ops.orchestration.work import Work

    add_model(workspace, "naive", "seasonal_naive")
    work, done = Work(workspace, RunnerSettings(), threading.Event()), []
    monkeypatch.setattr(work, "run", fake_run(done, status_of=lambda task: "failed"))
    assert [r["task"] for r in work.tick("manual")] == ["simulate_day"]  # nothing evaluated or trained on a stale day

    def broken(task, params, trigger, run_id=None):
        raise StoreError("runs.db stayed locked")
    monkeypatch.setattr(work, "run", broken)
    assert work.tick("manual") == [] and not work.ticking()  # logged; the line is free for the next tick
    monkeypatch.setattr(work, "run", fake_run(done))
    assert [r["task"] for r in work.tick("manual")][0] == "simulate_day"


# -- real runners --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_short_runs_beside_a_slow_training_and_one_training_per_model(workspace, start_runner, test_kinds,
                                                                      tmp_path):
    gate, doom = tmp_path / "gate", tmp_path / "doom"
    gate.touch()
    doom.touch()
    add_model(workspace, "naive", "seasonal_naive", trained=True)
    add_model(workspace, "slow", "test_gated", active=False, gate=str(gate))
    add_model(workspace, "doomed", "test_gated", active=False, gate=str(doom))
    store = RunStore(workspace.runs_path)
    runner = start_runner(workspace, "--at", far_schedule(), "--retries", "0")

    first = store.enqueue("train", "slow", {"model": "slow", "manual": True})
    wait_for(lambda: Path(f"{gate}.started").exists(), 60, "the slow training to wait at its gate", runner)
    second = store.enqueue("train", "slow", {"model": "slow", "manual": True})
    evaluation = store.enqueue("evaluate", params={"models": ["naive"]})

    # the evaluation starts at once and finishes while the training still waits; the second training waits
    run = wait_for(lambda: store.get(evaluation)["finished_at"] and store.get(evaluation), 60, "the evaluation", runner)
    assert run["status"] == "succeeded" and start_delay(run) < START_WITHIN_S, run
    assert store.get(first)["status"] == "running" and store.get(second)["status"] == "queued"

    # the gate opens: the first training ends, then the second one runs, never beside it
    gate.unlink()
    done = wait_for(lambda: store.get(second)["finished_at"] and [store.get(first), store.get(second)], 60,
                    "both trainings", runner)
    assert [r["status"] for r in done] == ["succeeded", "succeeded"] and not overlap(*done)
    assert [v[0] for v in versions(workspace, "slow")] == ["v1", "v2"]

    # a model deleted while it trains: only its training is killed; the evaluation beside it goes on
    training = store.enqueue("train", "doomed", {"model": "doomed", "manual": True})
    wait_for(lambda: Path(f"{doom}.started").exists(), 60, "the doomed training at its gate", runner)
    kernel = int(Path(f"{doom}.started").read_text())
    evaluation = store.enqueue("evaluate", params={"models": ["naive"]})
    wait_for(lambda: store.get(evaluation)["status"] == "running", START_WITHIN_S + 1, "the evaluation to start", runner)
    management.delete_model(workspace, "doomed")
    run = wait_for(lambda: store.get(training)["finished_at"] and store.get(training), 15, "the cancel", runner)
    assert run["status"] == "cancelled" and "deleted while it trained" in run["error"] and dead(kernel)
    run = wait_for(lambda: store.get(evaluation)["finished_at"] and store.get(evaluation), 60, "the evaluation", runner)
    assert run["status"] == "succeeded" and overlap(run, store.get(training))  # beside it, and not killed with it
    assert not (workspace.models_dir / "doomed").exists()


@pytest.mark.slow
def test_ticks_go_on_beside_a_training_in_order_arrivals_one_at_a_time(workspace, start_runner, test_kinds,
                                                                      tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    add_model(workspace, "slow", "test_gated", trained=True, gate="")  # v1 now, without waiting
    Registry(workspace.registry_path).update(
        lambda data: data["models"]["slow"]["params"].update(gate=str(gate)))  # its next training waits
    t0 = today(workspace)
    arrive(workspace, 6)  # v1 is 6 days old: due at the first tick's day
    store = RunStore(workspace.runs_path)
    runner = start_runner(workspace, "--day-seconds", "1", "--retries", "0")

    wait_for(lambda: Path(f"{gate}.started").exists(), 60, "the tick's training to wait at its gate", runner)
    Registry(workspace.registry_path).set_active("slow", False)  # no second training in this test
    manual = [store.enqueue("simulate_day") for _ in range(2)]  # requests between the ticks' arrivals
    wait_for(lambda: len(runs_of(store, task="evaluate", status="succeeded")) >= 3, 120,
             "two more ticks while the training waits", runner)
    gate.unlink()
    training = wait_for(lambda: [r for r in runs_of(store, task="train") if r["finished_at"]], 60,
                        "the training", runner)[0]
    wait_for(lambda: all(store.get(m)["finished_at"] for m in manual), 60, "the manual arrivals", runner)
    runner.proc.terminate()
    assert runner.wait(60) == 0, runner.log()[-3000:]

    # the tick's training trained at its tick's day, though days arrived while it trained
    assert training["status"] == "succeeded" and training["trigger"] == "schedule"
    assert versions(workspace, "slow") == [("v1", t0), ("v2", t0 + 7)] and today(workspace) > t0 + 8
    arrivals = [r for r in runs_of(store, task="simulate_day") if r["finished_at"]]
    assert [r["status"] for r in arrivals] == ["succeeded"] * len(arrivals) and set(manual) <= {r["id"] for r in arrivals}
    assert sum(overlap(r, training) for r in arrivals) >= 2  # the short lane did not wait behind it
    # never two arrivals at once
    assert not any(overlap(a, b) for i, a in enumerate(arrivals) for b in arrivals[i + 1:])
    # each tick in order: its arrival, then its evaluation (of the day it brought), then its training
    evaluations = [r for r in runs_of(store, task="evaluate", trigger="schedule") if r["finished_at"]]
    for evaluation in evaluations:
        brought = [a for a in arrivals if a["trigger"] == "schedule" and a["sim_day"] == evaluation["sim_day"] - 1]
        assert len(brought) == 1 and interval(brought[0])[1] <= interval(evaluation)[0], evaluation
        between = [a for a in arrivals if interval(brought[0])[0] < interval(a)[0] < interval(evaluation)[0]]
        assert between == [], f"an arrival ran between a tick's arrival and its evaluation: {between}"
    tick_evaluation = next(e for e in evaluations if e["sim_day"] == t0 + 7)
    assert training["sim_day"] == t0 + 7 and interval(tick_evaluation)[1] <= interval(training)[0]


@pytest.mark.slow
def test_three_workers_train_two_models_at_once_and_status_names_both(workspace, start_runner, test_kinds, tmp_path):
    gates = {name: tmp_path / f"gate-{name}" for name in ("left", "right")}
    for name, gate in gates.items():
        gate.touch()
        add_model(workspace, name, "test_gated", active=False, gate=str(gate))
    store = RunStore(workspace.runs_path)
    runner = start_runner(workspace, "--at", far_schedule(), "--workers", "3")
    trainings = [store.enqueue("train", name, {"model": name, "manual": True}) for name in gates]
    for gate in gates.values():
        wait_for(lambda: Path(f"{gate}.started").exists(), 60, f"the training at {gate.name}", runner)

    status = json.loads(m5ops(workspace, "status", "--json").stdout)
    assert all(any(run_id in line for line in status["running"]) for run_id in trainings), status["running"]
    beat = wait_for(lambda: all(i in (RunnerState(workspace.runs_path).heartbeat()["current_run"] or "")
                                for i in trainings) and RunnerState(workspace.runs_path).heartbeat(), 10,
                    "the heartbeat to name both trainings", runner)
    assert sorted(beat["current_run"].split(", ")) == sorted(trainings)
    for gate in gates.values():
        gate.unlink()
    done = wait_for(lambda: all(store.get(i)["finished_at"] for i in trainings) and [store.get(i) for i in trainings],
                    60, "both trainings", runner)
    assert [r["status"] for r in done] == ["succeeded", "succeeded"] and overlap(*done)
    assert "lanes: 2 for trainings, 1 for the rest" in runner.log()
