"""The runner as users start it: real runner processes, real notebooks, real signals.

Workspaces are tiny (7 synthetic series) and models cheap (baselines, plus the test kinds in
tests/plugins: one that always fails, one whose training waits at a gate file), so that a
simulated day costs two notebook runs; the long tests still take tens of seconds each.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import psutil
import pytest
import schedule

from m5ops.pipeline import lifecycle as management
from m5ops.models import load_plugins, model_kinds
from m5ops.pipeline.modeling import WorkspaceData, train_version
from m5ops.orchestration.lock import TOKEN_ENV, RunnerLock, kill_leftovers, read_holder
from m5ops.orchestration.scheduling import RunnerError, RunnerSettings, build_scheduler, latest_slot, missed_tick
from m5ops.stores.registry import Registry, empty_registry
from m5ops.stores.metrics import MetricStore
from m5ops.stores.runner_state import RunnerState
from m5ops.stores.runs import RunStore
from m5ops.pipeline.tasks import simulate_day
from m5ops.stores.layout import Workspace
from m5ops.pipeline.workspace_init import InitOptions, init_workspace

PLUGINS = Path(__file__).resolve().parent / "plugins"
REPO = Path(__file__).resolve().parents[1]
RUN_RUNNER = REPO / "runner" / "run_runner.py"
ENV = {**{k: v for k, v in os.environ.items() if k != TOKEN_ENV}, "M5OPS_PLUGINS": "m5ops_test_kinds",
       "PYTHONPATH": os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH")) if p)}
OUTPUT = re.compile(r"/\d{4}-\d{2}-\d{2}/(?P<stem>[a-z_]+(-[a-z0-9_-]+)?)-(?P<id>\d{8}T\d{6}-[0-9a-f]{6})\.ipynb$")


# -- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """A 7-series synthetic workspace with no models (copied by each test)."""
    home = tmp_path_factory.mktemp("template") / "ws"
    init_workspace(home, InitOptions(items=1, days=200, subset={"stores": ["CA_1"]}, progress=False))
    Registry(home / "registry.json").path.write_text(json.dumps(empty_registry()))
    return home


@pytest.fixture
def test_kinds(monkeypatch):
    """The test kinds, registered in this process for one test (runner kernels load them by M5OPS_PLUGINS)."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setattr(model_kinds, "_kinds", dict(model_kinds._kinds))  # restored after the test
    plugin = importlib.import_module("m5ops_test_kinds")
    for cls in (plugin.FailingModel, plugin.GatedModel):
        model_kinds.register(cls)


@pytest.fixture
def workspace(template, tmp_path) -> Workspace:
    shutil.copytree(template, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def add_model(workspace: Workspace, name: str, kind: str, *, active: bool = True, trained: bool = False,
              **params) -> None:
    """Create a model; ``trained``: give it a v1 now, in this process (fast)."""
    management.create_model(workspace, name, kind, params, active=active)
    if trained:
        train_version(WorkspaceData.open(workspace.home), name)


def arrive(workspace: Workspace, days: int) -> None:
    """Advance simulated time by ``days`` in this process (no notebooks)."""
    for _ in range(days):
        simulate_day(str(workspace.home), "setup")


class RunnerProcess:
    """``runner/run_runner.py`` as a child process, its output in files; killed with its tasks at close."""

    def __init__(self, workspace: Workspace, *args: str):
        self.workspace = workspace
        self.err = workspace.home.parent / f"runner-{time.monotonic_ns()}.err"
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(RUN_RUNNER), "--home", str(workspace.home), *args],
                                         stdout=err, stderr=subprocess.STDOUT, env=ENV)
        self.started = datetime.now(timezone.utc)

    def log(self) -> str:
        return self.err.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        kill_leftovers(read_holder(self.workspace).get("token"))


@pytest.fixture
def start_runner():
    started = []

    def start(workspace: Workspace, *args: str) -> RunnerProcess:
        started.append(RunnerProcess(workspace, *args))
        return started[-1]
    yield start
    for runner in started:
        runner.close()


def wait_for(condition, timeout: float, what: str, runner: RunnerProcess | None = None):
    """Poll ``condition`` until it returns something true; fail with the runner's log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if runner is not None and runner.proc.poll() is not None:
            raise AssertionError(f"runner exited ({runner.proc.returncode}) waiting for {what}:\n{runner.log()[-4000:]}")
        time.sleep(0.2)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}:\n{runner.log()[-4000:] if runner else ''}")


def runs_of(store: RunStore, **filters) -> list[dict]:
    """Runs oldest first, filtered by column values."""
    return [r for r in reversed(store.runs(limit=None)) if all(r[k] == v for k, v in filters.items())]


def assert_executed_notebook(run: dict) -> nbformat.NotebookNode:
    """The run's executed notebook exists at outputs/<sim-date>/<task>[-<model>]-<run-id>.ipynb."""
    match = OUTPUT.search(run["output"] or "")
    stem = run["task"] + (f"-{run['model']}" if run["model"] else "")
    assert match and match["stem"] == stem and match["id"] == run["id"], run["output"]
    return nbformat.read(run["output"], as_version=4)


def m5ops(workspace: Workspace, *args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it."""
    return subprocess.run([sys.executable, "-m", "m5ops.cli", "--home", str(workspace.home), *args],
                          capture_output=True, text=True, env=ENV, timeout=300)


def command_of(process: psutil.Process) -> str:
    """The start of a process's command line, to name it in a failure ("gone" if it just ended)."""
    try:
        return " ".join(process.cmdline()[:4])
    except psutil.NoSuchProcess:
        return "gone"


def dead(pid: int, wait_s: float = 5) -> bool:
    """Whether a process is gone (or a zombie about to be reaped), waiting up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def versions(workspace: Workspace, name: str) -> list[tuple[str, int]]:
    return [(v["id"], v["sim_day"]) for v in Registry(workspace.registry_path).get(name)["versions"]]


def today(workspace: Workspace) -> int:
    return WorkspaceData.open(workspace.home).split.today


# -- settings, schedule, lock: no notebooks -----------------------------------------------------
@pytest.mark.parametrize("settings, words", [
    ({"at": "2am"}, "use HH:MM on the 24-hour clock, e.g. --at 02:00"),
    ({"at": "24:00"}, "use HH:MM"),
    ({"day_seconds": 0}, "use e.g. --day-seconds 10"),
    ({"retries": -1}, "use 0 (never retry) or more"),
    ({"timeout_s": 0}, "--timeout 0 is not a positive number"),
    ({"grace_s": -1}, "--grace -1 is negative"),
    ({"niceness": 20}, "--nice 20 is not a niceness from 0 (as the runner) to 19"),
    ({"niceness": -5}, "use e.g. --nice 10"),
])
def test_settings_refuse_what_cannot_work_and_say_the_fix(settings, words):
    with pytest.raises(RunnerError, match=re.escape(words)):
        RunnerSettings(**settings)


NOW = datetime(2026, 3, 10, 15, 0).astimezone()


@pytest.mark.parametrize("settings, last, missed", [
    ({"at": "02:00"}, None, False),                                  # never ran: nothing missed
    ({"at": "02:00"}, NOW.replace(hour=2, minute=0, second=5), False),   # today's tick happened
    ({"at": "02:00"}, NOW - timedelta(days=1), True),                # today's 02:00 was missed
    ({"at": "16:00"}, NOW - timedelta(hours=20), False),             # yesterday 19:00 > yesterday's 16:00
    ({"at": "16:00"}, NOW - timedelta(hours=24), True),              # yesterday 15:00 < yesterday's 16:00
    ({"day_seconds": 5}, NOW - timedelta(seconds=4), False),
    ({"day_seconds": 5}, NOW - timedelta(seconds=6), True),
])
def test_a_missed_tick_is_caught_up_only_if_one_fell_due(settings, last, missed):
    assert missed_tick(RunnerSettings(**settings), last, NOW) is missed


def test_the_schedule_reads_as_the_settings_say():
    daily = build_scheduler(RunnerSettings(at="02:30"), lambda: None)
    assert daily.jobs[0].unit == "days" and daily.jobs[0].at_time.strftime("%H:%M") == "02:30"
    assert daily.next_run.strftime("%H:%M") == "02:30"
    demo = build_scheduler(RunnerSettings(day_seconds=1.5), lambda: None)
    assert isinstance(demo.jobs[0], schedule.Job) and demo.jobs[0].unit == "seconds"
    assert 1.0 < demo.idle_seconds <= 1.5
    assert latest_slot("16:00", NOW) == NOW.replace(hour=16, minute=0) - timedelta(days=1)


def test_a_second_driver_is_refused_with_the_first_ones_pid(workspace):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from m5ops.orchestration.lock import RunnerLock; from m5ops.stores.layout import Workspace;"
        f"lock = RunnerLock(Workspace({str(workspace.home)!r})).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunnerError, match=rf"pid {holder.pid} .* already drives the workspace .*kill {holder.pid}"):
            RunnerLock(workspace).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = RunnerLock(workspace).acquire()  # the kernel dropped the dead holder's lock
    assert lock.previous["pid"] == holder.pid and lock.previous_was_killed()
    lock.release()
    assert read_holder(workspace)["stopped_at"]


def test_processes_left_by_a_killed_driver_are_found_by_token_and_killed():
    left = subprocess.Popen(["sleep", "60"], env={**os.environ, TOKEN_ENV: "123-abc"})
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, TOKEN_ENV: "456-def"})
    try:
        assert kill_leftovers("123-abc") == [left.pid]
        assert dead(left.pid) and other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_plugins_named_in_the_environment_add_kinds_or_fail_saying_the_fix():
    listed = subprocess.run([sys.executable, "-c", "from m5ops.models import kinds; print(kinds())"],
                            capture_output=True, text=True, env=ENV, check=True).stdout
    assert "'test_failing'" in listed and "'test_gated'" in listed and "'lightgbm'" in listed
    with pytest.raises(ImportError, match="M5OPS_PLUGINS names 'no_such_plugin'.*PYTHONPATH"):
        load_plugins("no_such_plugin")


def test_queue_claims_can_skip_tasks_and_runner_state_persists(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    tick = store.enqueue("tick", params={"days": 1})
    train = store.enqueue("train", "m", {"model": "m", "manual": True})
    assert store.claim_next_queued(exclude_tasks=("tick",))["id"] == train
    assert store.claim_next_queued(exclude_tasks=("tick",)) is None
    assert store.claim_next_queued()["id"] == tick
    state = RunnerState(tmp_path / "runs.db")
    state.set_state(last_tick_at="2026-01-01T02:00:00+00:00", schedule="daily at 02:00")
    state.set_state(schedule="every 1 s (demo)")
    assert state.state() == {"last_tick_at": "2026-01-01T02:00:00+00:00", "schedule": "every 1 s (demo)"}


def test_requests_that_cannot_run_are_closed_saying_why(workspace):
    from threading import Event

    from m5ops.orchestration.work import Work

    store = RunStore(workspace.runs_path)
    asked = [store.enqueue("deploy"), store.enqueue("train", "ghost", {"model": "ghost", "manual": True}),
             store.enqueue("tick", params={"days": 0}), store.enqueue("evaluate", params={"models": ["ghost"]})]
    assert Work(workspace, RunnerSettings(), Event()).serve_queue(limit=4)
    assert [(store.get(i)["status"], store.get(i)["error"].split(";")[0]) for i in asked] == [
        ("failed", "unknown task 'deploy'"),
        ("cancelled", "cancelled: there is no model 'ghost' (deleted before its training started?)"),
        ("failed", "tick days must be a positive integer, got 0"),
        ("cancelled", "cancelled: no model named in the request exists (deleted meanwhile?)"),
    ]


# -- real runners ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_runner_ticks_daily_retrains_active_models_weekly_and_serves_requests(workspace, start_runner,
                                                                                  test_kinds):
    add_model(workspace, "naive", "seasonal_naive", trained=True)
    add_model(workspace, "steady", "moving_average", active=False, trained=True)
    add_model(workspace, "revived", "seasonal_naive", active=False, trained=True)
    add_model(workspace, "broken", "test_failing", active=False)
    t0 = today(workspace)
    arrive(workspace, 6)  # the v1s are 6 days old: naive is due at the first tick
    store = RunStore(workspace.runs_path)
    runner = start_runner(workspace, "--day-seconds", "1", "--retries", "1", "--retry-delay", "0.5")

    wait_for(lambda: runs_of(store, task="simulate_day"), 30, "the first tick", runner)
    revive = store.enqueue("train", "revived", {"model": "revived", "manual": True})
    broken = store.enqueue("train", "broken", {"model": "broken", "manual": True})
    wait_for(lambda: len(versions(workspace, "naive")) == 3 and len(versions(workspace, "revived")) == 3,
             480, "two weekly retrainings", runner)  # 14 ticks of 3 notebooks each, and the trainings
    runner.proc.send_signal(signal.SIGTERM)
    assert runner.wait(60) == 0, runner.log()[-3000:]

    # one arrival and one evaluation of every model per simulated day
    arrivals = runs_of(store, task="simulate_day", trigger="schedule")
    evaluations = runs_of(store, task="evaluate", trigger="schedule")
    assert len(arrivals) >= 8 and all(r["status"] == "succeeded" for r in arrivals + evaluations)
    metrics = MetricStore(workspace.runs_path).history()
    for day in range(t0 + 7, t0 + 15):
        assert set(metrics[metrics["sim_day"] == day]["model"]) == {"naive", "steady", "revived"}, day
    # weekly retraining of active models only; the paused one skipped; the manual one re-activated
    assert versions(workspace, "naive") == [("v1", t0), ("v2", t0 + 7), ("v3", t0 + 14)]
    assert versions(workspace, "revived") == [("v1", t0), ("v2", t0 + 7), ("v3", t0 + 14)]
    assert versions(workspace, "steady") == [("v1", t0)] and versions(workspace, "broken") == []
    models = Registry(workspace.registry_path).models()
    assert models["revived"]["schedule"]["active"] and not models["steady"]["schedule"]["active"]
    assert store.get(revive)["status"] == "succeeded" and store.get(revive)["trigger"] == "manual"
    scheduled = [(r["model"], r["sim_day"]) for r in runs_of(store, task="train", trigger="schedule")]
    assert sorted(scheduled) == [("naive", t0 + 7), ("naive", t0 + 14), ("revived", t0 + 14)]
    # the failing notebook: retried once, both attempts recorded with their notebooks; the runner went on
    attempts = runs_of(store, task="train", model="broken")
    assert [(r["status"], r["attempt"]) for r in attempts] == [("failed", 1), ("failed", 2)]
    assert attempts[0]["id"] == broken and all("made to fail" in r["error"] for r in attempts)
    for run in store.runs(limit=None):
        notebook = assert_executed_notebook(run)
        errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert bool(errors) == (run["status"] == "failed"), run["id"]
    # a clean stop: nothing left running, heartbeat gone, lock free, one log line per run event
    assert store.running() == [] and RunnerState(workspace.runs_path).heartbeat() is None
    assert "stopped_at" in read_holder(workspace)
    log = (workspace.logs_dir / "m5ops.log").read_text()
    assert f"run {broken} failed; retrying train as attempt 2" in log and f"run {revive} claimed" in log


@pytest.mark.slow
def test_timeouts_deletes_dead_kernels_queued_ticks_and_a_graceful_stop(workspace, start_runner, test_kinds,
                                                                         tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    add_model(workspace, "naive", "seasonal_naive", trained=True)
    for name in ("hangs", "deleted", "oom", "stopped"):
        add_model(workspace, name, "test_gated", active=False, gate=str(gate))
    add_model(workspace, "gone", "seasonal_naive", active=False)
    store = RunStore(workspace.runs_path)
    at = (datetime.now() - timedelta(hours=1)).strftime("%H:%M")  # next scheduled tick: in 23 hours
    runner = start_runner(workspace, "--at", at, "--timeout", "12", "--retries", "0", "--grace", "2")
    wait_for(RunnerState(workspace.runs_path).heartbeat, 30, "the first heartbeat", runner)

    hangs = store.enqueue("train", "hangs", {"model": "hangs", "manual": True})
    deleted = store.enqueue("train", "deleted", {"model": "deleted", "manual": True})
    oom = store.enqueue("train", "oom", {"model": "oom", "manual": True})
    gone = store.enqueue("train", "gone", {"model": "gone", "manual": True})
    management.delete_model(workspace, "gone")  # its queued request is cancelled
    assert store.get(gone)["status"] == "cancelled"

    # status shows the runner, what it runs and what is queued
    wait_for(lambda: store.get(hangs)["status"] == "running", 10, "the first request to start", runner)
    status = json.loads(m5ops(workspace, "status", "--json").stdout)
    assert status["runner_alive"] and status["runner"]["pid"] == runner.proc.pid
    assert any(hangs in line for line in status["running"]) and any(deleted in line for line in status["queued"])
    wait_for(lambda: hangs in (RunnerState(workspace.runs_path).heartbeat()["current_run"] or ""), 10,
             "the heartbeat to name the running training", runner)
    # only one runner per workspace, and no backfill beside it
    second = subprocess.run([sys.executable, str(RUN_RUNNER), "--home", str(workspace.home)],
                            capture_output=True, text=True, env=ENV, timeout=60)
    assert second.returncode == 2 and f"(pid {runner.proc.pid} " in second.stderr and "--queue" in second.stderr
    backfill = m5ops(workspace, "tick")
    assert backfill.returncode == 2 and f"kill {runner.proc.pid}" in backfill.stderr.strip().splitlines()[-1]

    # a hung training: killed at the timeout with its kernel, recorded failed, the runner goes on
    run = store.get(hangs)
    started = datetime.fromisoformat(run["started_at"]) - datetime.fromisoformat(run["created_at"])
    assert started.total_seconds() < 3, "an idle runner starts a request within about a second"
    kernel = int(wait_for(lambda: Path(f"{gate}.started").exists() and Path(f"{gate}.started").read_text(),
                          30, "the hung training", runner))
    Path(f"{gate}.started").unlink()  # at once: on a warm kernel the next training starts right after this one
    # the task's kernel runs at the runner's default niceness, 10 above the runner's own (unless a
    # loaded machine let the 12 s timeout below kill it before we could look)
    with contextlib.suppress(psutil.NoSuchProcess):
        assert psutil.Process(kernel).nice() == min(19, psutil.Process(runner.proc.pid).nice() + 10)
    run = wait_for(lambda: store.get(hangs)["status"] != "running" and store.get(hangs), 30, "the timeout", runner)
    assert run["status"] == "failed" and "timed out after 12 s" in run["error"] and dead(kernel)
    assert "timed out" in assert_executed_notebook(run).cells[-1].source
    # queued only now: in the short lane it runs beside the trainings, and would load the 2 cores
    # while the hung training's 12 s run out
    ticked = store.enqueue("tick", params={"days": 1})

    # a model deleted while it trains: the training is killed and cancelled, nothing registered
    wait_for(lambda: Path(f"{gate}.started").exists(), 30, "the second gated training", runner)
    kernel = int(Path(f"{gate}.started").read_text())
    Path(f"{gate}.started").unlink()
    management.delete_model(workspace, "deleted")
    run = wait_for(lambda: store.get(deleted)["status"] != "running" and store.get(deleted), 15, "the cancel", runner)
    assert run["status"] == "cancelled" and "deleted while it trained" in run["error"]
    assert dead(kernel) and not (workspace.models_dir / "deleted").exists()
    assert "deleted" not in Registry(workspace.registry_path).models()
    assert "this run was stopped" in assert_executed_notebook(run).cells[-1].source

    # a kernel killed from outside (as by the OOM killer): the run fails at once, the runner goes on
    wait_for(lambda: Path(f"{gate}.started").exists(), 30, "the third gated training", runner)
    kernel = int(Path(f"{gate}.started").read_text())
    Path(f"{gate}.started").unlink()
    os.kill(kernel, signal.SIGKILL)
    run = wait_for(lambda: store.get(oom)["status"] != "running" and store.get(oom), 10, "the dead kernel", runner)
    assert run["status"] == "failed" and "DeadKernelError" in run["error"]

    # a queued tick: a meta-run over one full tick's sub-runs
    run = wait_for(lambda: store.get(ticked)["finished_at"] and store.get(ticked), 60, "the queued tick", runner)
    subs = [r for r in runs_of(store, trigger="manual") if r["task"] in ("simulate_day", "evaluate")]
    assert run["status"] == "succeeded" and [r["task"] for r in subs] == ["simulate_day", "evaluate"]
    assert all(r["status"] == "succeeded" for r in subs)

    # SIGTERM during a training: the grace passes, the run is interrupted, the runner exits cleanly
    stopped = store.enqueue("train", "stopped", {"model": "stopped", "manual": True})
    wait_for(lambda: Path(f"{gate}.started").exists(), 30, "the fourth gated training", runner)
    runner.proc.send_signal(signal.SIGTERM)
    assert runner.wait(30) == 0, runner.log()[-3000:]
    run = store.get(stopped)
    assert run["status"] == "interrupted" and "SIGTERM" in run["error"] and "grace 2 s" in run["error"]
    assert dead(int(Path(f"{gate}.started").read_text()))
    assert RunnerState(workspace.runs_path).heartbeat() is None and store.running() == []
    assert Registry(workspace.registry_path).get("stopped")["versions"] == []


@pytest.mark.slow
def test_sigkill_during_a_training_then_a_restart_recovers_catches_up_and_backfills(workspace, start_runner,
                                                                                    test_kinds, tmp_path):
    gate = tmp_path / "gate"
    add_model(workspace, "naive", "seasonal_naive", trained=True)
    add_model(workspace, "gated", "test_gated", active=False, trained=True, gate=str(gate))
    store = RunStore(workspace.runs_path)
    first = start_runner(workspace, "--day-seconds", "2")
    wait_for(lambda: len([r for r in runs_of(store, task="evaluate") if r["status"] == "succeeded"]) == 1,
             60, "the first tick", first)

    gate.touch()
    training = store.enqueue("train", "gated", {"model": "gated", "manual": True})
    wait_for(lambda: Path(f"{gate}.started").exists(), 60, "the gated training", first)
    kernel = int(Path(f"{gate}.started").read_text())
    # the forked task processes and the kernels (the one doing the fit, the runner's warm spares)
    below = {p.pid: command_of(p) for p in psutil.Process(first.proc.pid).children(recursive=True)}
    assert kernel in below and len(below) > 2
    first.proc.kill()
    first.proc.wait(10)
    # no runner now: its tasks and kernels die with it, so nothing can finish. A spare still starting
    # arms its parent-death signal only once its interpreter runs the preload, which on a loaded
    # machine can take more than 5 s (CI once saw one outlive a 5 s wait): up to 20 s each.
    survivors = {pid: command for pid, command in below.items() if not dead(pid, wait_s=20)}
    assert not survivors, f"outlived their SIGKILLed runner: {survivors}"
    gate.unlink()  # an orphan still alive would now register v2
    time.sleep(3)
    assert [v["id"] for v in Registry(workspace.registry_path).get("gated")["versions"]] == ["v1"]
    assert store.get(training)["status"] == "running"  # until a runner looks: 'm5ops check' says so
    check = m5ops(workspace, "check")
    assert check.returncode == 1 and f"run {training} train-gated is recorded running" in check.stdout

    second = start_runner(workspace, "--day-seconds", "5")
    run = wait_for(lambda: store.get(training)["status"] != "running" and store.get(training), 30,
                   "the recovery", second)
    assert run["status"] == "interrupted" and f"pid {first.proc.pid}" in run["error"]
    catch_up = wait_for(lambda: [r for r in runs_of(store, task="evaluate", status="succeeded")
                                 if datetime.fromisoformat(r["created_at"]) > second.started], 60, "the catch-up", second)
    assert "catch-up: a tick fell due" in second.log()
    assert (datetime.fromisoformat(catch_up[0]["started_at"]) - second.started).total_seconds() < 20
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0
    Registry(workspace.registry_path).data()  # valid
    model = Registry(workspace.registry_path).get("gated")
    assert model["current_version"] == "v1" and [v["id"] for v in model["versions"]] == ["v1"]
    assert not model["schedule"]["active"]

    # with no runner, `m5ops tick --days N` runs N full ticks now
    day = today(workspace)
    backfill = m5ops(workspace, "tick", "--days", "2")
    assert backfill.returncode == 0 and "0 not succeeded" in backfill.stdout  # the bar: test_progress.py
    assert today(workspace) == day + 2
    assert [(r["task"], r["status"]) for r in runs_of(store, trigger="backfill")] == \
        [("simulate_day", "succeeded"), ("evaluate", "succeeded"), ("issue_forecast", "succeeded")] * 2
