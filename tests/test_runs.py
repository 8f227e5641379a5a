"""The run store: run states, the queue claimed by several processes, metrics, heartbeat."""
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from m5ops.errors import RunError, StoreError
from m5ops.stores.runs import RunStore


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.db")


def test_store_uses_wal_and_run_ids_are_short_and_sortable(store):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first = store.new_run("simulate_day", trigger="schedule", sim_day=1914)
    second = store.new_run("evaluate", trigger="schedule", sim_day=1914)
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", first)
    assert first[:15] <= second[:15] and first != second


def test_new_run_records_a_running_run_with_params_decoded(store):
    run_id = store.new_run("train", model="m", params={"num_leaves": 31}, trigger="manual",
                           sim_day=1914)
    run = store.get(run_id)
    assert run["status"] == "running" and run["started_at"] and run["pid"]
    assert run["params"] == {"num_leaves": 31} and run["sim_day"] == 1914
    assert run["trigger"] == "manual" and run["attempt"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"trigger": "cron"}, "trigger 'cron' is not one of schedule, manual, backfill"),
    ({"trigger": "manual", "status": "succeeded"}, "status 'succeeded' is not one of queued, running"),
])
def test_new_run_refuses_unknown_trigger_or_status(store, kwargs, message):
    with pytest.raises(RunError, match=message):
        store.new_run("train", **kwargs)


def test_queue_is_claimed_oldest_first_skipping_excluded_models(store):
    a = store.enqueue("train", "a", {"x": 1})
    b = store.enqueue("train", "b")
    c = store.enqueue("evaluate")
    assert [r["id"] for r in store.queued()] == [a, b, c]
    claimed = store.claim_next_queued(exclude_models={"a"})
    assert claimed["id"] == b and claimed["status"] == "running" and claimed["started_at"]
    assert store.claim_next_queued(exclude_models={"a"})["id"] == c  # no model: never excluded
    assert store.claim_next_queued(exclude_models={"a"}) is None
    assert store.claim_next_queued()["params"] == {"x": 1}
    assert store.queued() == [] and [r["id"] for r in store.running()] == [a, b, c]


def test_claim_skips_excluded_tasks(store):
    create = store.enqueue("create", "m")
    train = store.enqueue("train", "m")
    assert store.claim_next_queued(exclude_tasks={"create"})["id"] == train
    assert store.claim_next_queued(exclude_tasks={"create"}) is None
    assert store.claim_next_queued()["id"] == create


@pytest.mark.parametrize("final", ["succeeded", "failed", "interrupted", "cancelled"])
def test_finish_closes_a_run_once(store, final):
    run_id = store.enqueue("train", "m")
    store.start(run_id, pid=4242)
    store.set_output(run_id, "outputs/2016-04-25/train-m.ipynb")
    run = store.finish(run_id, final, error=None if final == "succeeded" else "boom")
    assert run["status"] == final and run["finished_at"] and run["pid"] == 4242
    assert run["output"] == "outputs/2016-04-25/train-m.ipynb"  # kept from set_output
    with pytest.raises(RunError, match=f"is {final}; only a queued or running run"):
        store.finish(run_id, "failed")


def test_state_changes_that_make_no_sense_are_refused(store):
    run_id = store.new_run("train", trigger="manual")
    with pytest.raises(RunError, match="only a queued run can be started"):
        store.start(run_id)
    with pytest.raises(RunError, match="final status 'running'"):
        store.finish(run_id, "running")
    with pytest.raises(RunError, match="no run with id 'nope'"):
        store.finish("nope", "failed")
    with pytest.raises(RunError, match="no run with id 'nope'"):
        store.get("nope")


def test_cancel_queued_for_model_touches_only_its_queued_runs(store):
    queued = [store.enqueue("train", "m"), store.enqueue("evaluate", "m")]
    running = store.new_run("train", model="m", trigger="schedule")
    other = store.enqueue("train", "other")
    assert store.cancel_queued_for_model("m") == 2
    assert {store.get(i)["status"] for i in queued} == {"cancelled"}
    assert store.get(running)["status"] == "running"
    assert store.get(other)["status"] == "queued"


def test_mark_interrupted_closes_running_runs_only(store):
    running = [store.new_run("train", model="m", trigger="schedule") for _ in range(2)]
    queued = store.enqueue("train", "m")
    done = store.new_run("evaluate", trigger="schedule")
    store.finish(done, "succeeded")
    assert store.mark_interrupted() == 2
    for run_id in running:
        run = store.get(run_id)
        assert run["status"] == "interrupted" and run["finished_at"] and "interrupted" in run["error"]
    assert store.get(queued)["status"] == "queued" and store.get(done)["status"] == "succeeded"
    assert store.mark_interrupted() == 0


def test_runs_lists_newest_first_with_filters(store):
    ids = [store.new_run("train", model=m, trigger="schedule") for m in ("a", "b", "a")]
    store.finish(ids[0], "failed", error="boom")
    assert [r["id"] for r in store.runs()] == ids[::-1]
    assert [r["id"] for r in store.runs(model="a")] == [ids[2], ids[0]]
    assert [r["id"] for r in store.runs(status="failed")] == [ids[0]]
    assert [r["id"] for r in store.runs(status=["failed", "running"], limit=2)] == ids[:0:-1]
    assert store.runs(task="evaluate") == []


def test_file_that_is_not_a_database_is_reported_with_its_path(tmp_path):
    path = tmp_path / "runs.db"
    path.write_text("not sqlite " * 100)
    with pytest.raises(StoreError, match=re.escape(str(path)) + ".*not a database"):
        RunStore(path)


def test_missing_workspace_folder_is_reported(tmp_path):
    with pytest.raises(StoreError, match="m5ops init"):
        RunStore(tmp_path / "nowhere" / "runs.db")


CLAIMER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from m5ops.stores.runs import RunStore
    store, go = RunStore(sys.argv[1]), Path(sys.argv[2])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    claimed = []
    while (run := store.claim_next_queued()) is not None:
        claimed.append(run["id"])
        time.sleep(0.001)  # a runner works between claims; back-to-back claims starve the other
    print(json.dumps(claimed))
""")


def test_two_processes_claiming_at_once_never_get_the_same_run(store, tmp_path):
    queued = {store.enqueue("train", f"m{i % 7}", {"i": i}) for i in range(300)}
    go = tmp_path / "go"
    claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(store.path), str(go)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    assert [c.stdout.readline().strip() for c in claimers] == ["ready", "ready"]
    go.touch()  # both are past their imports: they start claiming together
    results = [json.loads(c.communicate(timeout=60)[0]) for c in claimers]
    assert [c.returncode for c in claimers] == [0, 0]
    everything = results[0] + results[1]
    assert len(everything) == len(set(everything)) == 300 and set(everything) == queued
    assert all(results), "both claimers should have won some runs"
    pids = {run["pid"] for run in store.running()}
    assert pids == {c.pid for c in claimers} and store.queued() == []
