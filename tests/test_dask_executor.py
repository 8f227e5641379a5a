"""The runner's executor on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

Requests and ticks execute on the workers (recorded with the worker's address), two models train at
once on two workers, a worker SIGKILLed mid-training leaves a valid workspace and its run is retried
on the other worker, an unreachable scheduler is refused at start, a lost one stops the runner.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("distributed")

from dask_cluster import Cluster, cluster_env, free_port  # noqa: E402
from m5ops.pipeline.check import check_workspace  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402
from m5ops.stores.runs import RunStore  # noqa: E402
from test_lanes import far_schedule, interval, overlap  # noqa: E402
from test_runner import (  # noqa: E402,F401  (fixtures: template, workspace, start_runner, test_kinds)
    ENV, add_model, assert_executed_notebook, dead, m5ops, runs_of, start_runner, template, test_kinds, wait_for,
    workspace,
)


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path, cluster_env(ENV), workers=2)
    yield started
    started.close()


def dask_runner(start_runner, workspace, cluster, *args):
    return start_runner(workspace, "--at", far_schedule(), "--workers", "3", "--retry-delay", "0.5",
                        "--executor", "dask", "--scheduler", cluster.address, *args)


def test_an_unreachable_scheduler_is_refused_at_start_with_status_2(workspace, start_runner):
    address = f"tcp://127.0.0.1:{free_port()}"
    runner = start_runner(workspace, "--executor", "dask", "--scheduler", address)
    assert runner.wait(60) == 2
    assert f"cannot reach the Dask scheduler at {address}" in runner.log() and "dask scheduler" in runner.log()
    assert RunStore(workspace.runs_path).runs() == []


def test_the_dask_executor_needs_a_scheduler_and_says_how_to_start_one(workspace):
    result = m5ops(workspace, "runner", "--executor", "dask")
    assert result.returncode == 2 and "--scheduler tcp://HOST:8786" in result.stderr


@pytest.mark.slow
def test_ticks_and_requests_run_on_the_workers_recorded_with_their_address(workspace, start_runner, cluster):
    add_model(workspace, "snaive", "seasonal_naive", active=True)
    workers = set(cluster.workers().values())
    runner = dask_runner(start_runner, workspace, cluster)
    store = RunStore(workspace.runs_path)
    tick = store.enqueue("tick", params={"days": 1})
    wait_for(lambda: store.get(tick)["status"] not in ("queued", "running"), 240, "the tick through the cluster",
             runner)
    assert store.get(tick)["status"] == "succeeded", runner.log()[-3000:]
    evaluate = store.enqueue("evaluate", params={})
    wait_for(lambda: store.get(evaluate)["status"] == "succeeded", 120, "a manual evaluation", runner)

    runs = {run["id"]: run for run in json.loads(m5ops(workspace, "runs", "--json").stdout)}
    steps = [r for r in runs_of(store) if r["task"] != "tick"]
    assert [r["task"] for r in steps[:3]] == ["simulate_day", "evaluate", "issue_forecast"]
    for earlier, later in zip(steps, steps[1:3]):  # the tick's order holds across workers
        assert interval(earlier)[1] <= interval(later)[0]
    trainings = [r for r in steps if r["task"] == "train"]
    assert trainings and all(r["status"] == "succeeded" for r in steps)
    for run in steps:
        assert run["worker"] in workers and runs[run["id"]]["worker"] == run["worker"]
        assert_executed_notebook(run)
    assert f"executor dask (scheduler {cluster.address}, 2 worker(s))" in runner.log()

    # m5ops check on the workers: sound as each one sees it, and a damaged day is reported by each of them
    checked = m5ops(workspace, "check", "--scheduler", cluster.address)
    assert checked.returncode == 0 and "sound here and on every Dask worker" in checked.stdout, checked.stderr
    features = sorted((workspace.home / "features").iterdir())
    features[len(features) // 2].write_bytes(b"not parquet")
    checked = m5ops(workspace, "check", "--scheduler", cluster.address)
    assert checked.returncode == 1
    assert all(f"[workers] worker {address}: [features]" in checked.stdout for address in workers), checked.stdout


@pytest.mark.slow
def test_two_models_train_at_once_on_two_workers_and_one_model_never_twice(workspace, start_runner, test_kinds,
                                                                          cluster, tmp_path):
    gates = {name: tmp_path / f"gate-{name}" for name in ("left", "right")}
    for name, gate in gates.items():
        gate.touch()
        add_model(workspace, name, "test_gated", active=False, gate=str(gate))
    store = RunStore(workspace.runs_path)
    runner = dask_runner(start_runner, workspace, cluster)
    # the second training is queued once the first executes (and has seceded from its worker's
    # thread, so the scheduler counts that worker idle): it must still go to the free worker
    first = [store.enqueue("train", "left", {"model": "left", "manual": True})]
    wait_for(lambda: Path(f"{gates['left']}.started").exists(), 120, "the training at gate-left", runner)
    first.append(store.enqueue("train", "right", {"model": "right", "manual": True}))
    again = store.enqueue("train", "left", {"model": "left", "manual": True})
    wait_for(lambda: Path(f"{gates['right']}.started").exists(), 60, "the training at gate-right", runner)
    running = [store.get(i) for i in first]
    assert len({run["worker"] for run in running}) == 2, running  # one on each worker
    workers = {cluster.processes[name].pid for name in ("w1", "w2")}
    for gate in gates.values():  # warm kernels of the worker's own pool: its children, not a run's process's
        assert psutil.Process(int(Path(f"{gate}.started").read_text())).ppid() in workers
    time.sleep(2)
    assert store.get(again)["status"] == "queued"  # left trains already: its second training waits
    for gate in gates.values():
        gate.unlink()
    done = wait_for(lambda: all(store.get(i)["finished_at"] for i in [*first, again])
                    and [store.get(i) for i in [*first, again]], 120, "the three trainings", runner)
    assert [r["status"] for r in done] == ["succeeded"] * 3
    assert overlap(done[0], done[1]) and not overlap(done[0], done[2])


@pytest.mark.slow
def test_a_worker_killed_mid_training_leaves_a_valid_workspace_and_the_run_is_retried_on_the_other(
        workspace, start_runner, test_kinds, cluster, tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    add_model(workspace, "slow", "test_gated", active=False, gate=str(gate))
    store = RunStore(workspace.runs_path)
    runner = dask_runner(start_runner, workspace, cluster)
    first = store.enqueue("train", "slow", {"model": "slow", "manual": True})
    wait_for(lambda: Path(f"{gate}.started").exists(), 120, "the training at its gate", runner)
    kernel = int(Path(f"{gate}.started").read_text())
    victim_address = store.get(first)["worker"]
    victim = next(name for name, address in cluster.workers().items() if address == victim_address)
    Path(f"{gate}.started").unlink()
    os.kill(cluster.processes[victim].pid, 9)  # SIGKILL of the worker process alone, mid-training
    assert dead(kernel) or wait_for(lambda: not psutil.pid_exists(kernel), 20, "the orphaned kernel to exit")

    wait_for(lambda: store.get(first)["status"] == "interrupted", 60, "the run recorded interrupted", runner)
    assert "left the cluster" in store.get(first)["error"] or "was lost" in store.get(first)["error"]
    retry = wait_for(lambda: [r for r in runs_of(store, task="train") if r["attempt"] == 2], 60, "the retry",
                     runner)[0]
    wait_for(lambda: Path(f"{gate}.started").exists(), 120, "the retry at its gate", runner)
    gate.unlink()
    wait_for(lambda: store.get(retry["id"])["status"] == "succeeded", 120, "the retry to succeed", runner)
    survivor = next(address for name, address in cluster.workers().items() if name != victim)
    assert store.get(retry["id"])["worker"] == survivor != victim_address
    versions = Registry(workspace.registry_path).get("slow")["versions"]
    assert len(versions) == 1 and versions[0]["lineage"]["run_id"] == retry["id"]  # nothing of the killed run
    model_dirs = sorted(p.name for p in (workspace.models_dir / "slow").iterdir())
    assert model_dirs == [versions[0]["id"]], model_dirs  # no half-written version folder
    runner.proc.terminate()
    assert runner.wait(60) == 0
    assert check_workspace(workspace) == []


@pytest.mark.slow
def test_a_lost_scheduler_stops_the_runner_with_a_clear_line_never_a_hang(workspace, start_runner, test_kinds,
                                                                         cluster, tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    add_model(workspace, "slow", "test_gated", active=False, gate=str(gate))
    store = RunStore(workspace.runs_path)
    runner = dask_runner(start_runner, workspace, cluster, "--retries", "0")
    run = store.enqueue("train", "slow", {"model": "slow", "manual": True})
    wait_for(lambda: Path(f"{gate}.started").exists(), 120, "the training at its gate", runner)
    cluster.kill("scheduler")
    later = store.enqueue("evaluate", params={})
    assert runner.wait(90) == 1
    assert f"the Dask scheduler at {cluster.address} is unreachable" in runner.log()
    assert "the runner submits no more runs and stops" in runner.log()
    assert store.get(run)["status"] == "interrupted"
    later = store.get(later)  # never executed: still queued for the next runner, or refused as not submitted
    assert later["status"] == "queued" or later["status"] == "interrupted" and "not submitted" in later["error"]


@pytest.mark.slow
def test_a_distributed_lightgbm_trains_through_the_runner_across_the_workers(workspace, start_runner, cluster):
    add_model(workspace, "gbm", "lightgbm", active=False, distributed=True, num_boost_round=20, train_days=60)
    store = RunStore(workspace.runs_path)
    runner = dask_runner(start_runner, workspace, cluster)
    run = store.enqueue("train", "gbm", {"model": "gbm", "manual": True})
    wait_for(lambda: store.get(run)["finished_at"], 240, "the distributed training", runner)
    assert store.get(run)["status"] == "succeeded", store.get(run)["error"]
    version = Registry(workspace.registry_path).get("gbm")["versions"][0]
    assert (workspace.home / version["artifact"] / "model.txt").is_file()
    assert_executed_notebook(store.get(run))
    for name in ("w1", "w2"):  # LightGBM's own network: one rank on each worker
        assert "total number of machines: 2" in cluster.log(name, tail=None), cluster.log(name)
