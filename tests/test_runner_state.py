"""The runner's heartbeat and persisted state in runs.db."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from m5ops.stores.runner_state import RunnerState


@pytest.fixture
def store(tmp_path):
    return RunnerState(tmp_path / "runs.db")


def test_runner_state_round_trips_json_values_by_key(store):
    assert store.state() == {}
    store.set_state(last_tick=1914, schedule={"at": "06:00"})
    store.set_state(last_tick=1915)
    assert store.state() == {"last_tick": 1915, "schedule": {"at": "06:00"}}


def test_heartbeat_alive_then_stale_then_cleared(store):
    assert store.heartbeat() is None and not store.alive()
    store.beat(pid=os.getpid())
    first = store.heartbeat()
    assert store.alive() and first["age_s"] < 5
    store.beat(pid=os.getpid(), current_run="r1")
    assert store.heartbeat()["started_at"] == first["started_at"]  # same runner
    assert store.heartbeat()["current_run"] == "r1"
    old = (datetime.now(timezone.utc) - timedelta(seconds=60)).isoformat(timespec="milliseconds")
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE heartbeat SET beat_at = ?", (old,))
    assert not store.alive(max_age_s=15) and store.alive(max_age_s=120)
    assert not store.clear_heartbeat(pid=1) and store.clear_heartbeat(pid=os.getpid())
    assert store.heartbeat() is None


def test_heartbeat_of_a_killed_runner_is_not_alive(store):
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    store.beat(pid=runner.pid)
    assert store.alive()
    runner.kill()
    runner.wait()
    assert not store.alive()  # fresh beat, but the process is gone
    store.beat(pid=os.getpid())
    assert store.heartbeat()["pid"] == os.getpid()
