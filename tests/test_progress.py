"""Progress of a running task: reported by the task, kept on its run in runs.db, shown by status and the dashboard."""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402
from test_models import SMALL, make_frame, make_sales, split  # noqa: E402

from m5ops.pipeline import lifecycle as management, tasks  # noqa: E402
from m5ops.cli.workspace_commands import cmd_status  # noqa: E402
from m5ops.stores.status import workspace_status  # noqa: E402
from m5ops.dashboard.progress_panel import ProgressPanel, bar_text  # noqa: E402
from m5ops.dashboard.state import RunningRow, WorkspaceReader, running_rows  # noqa: E402
from m5ops.errors import RunError  # noqa: E402
from m5ops.models import get_kind  # noqa: E402
from m5ops.cli.progress_bar import terminal_bar  # noqa: E402
from m5ops.models.progress import no_progress, part, progress_text  # noqa: E402
from m5ops.pipeline.progress import RunProgress, for_run  # noqa: E402
from m5ops.stores.rundb import SCHEMA_VERSION  # noqa: E402
from m5ops.stores.runs import RunStore  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402


class Recorder:
    """A progress report that keeps every (fraction, note)."""

    def __init__(self):
        self.reports: list[tuple[float, str]] = []

    def __call__(self, fraction: float, note: str = "") -> None:
        self.reports.append((fraction, note))


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.db")


# -- runs.db ------------------------------------------------------------------------------------
def test_progress_is_kept_on_a_running_run_clipped_to_0_1(store):
    run_id = store.new_run("train", model="m", trigger="manual")
    assert store.get(run_id)["progress"] is None
    assert store.set_progress(run_id, 0.42, "boosting round 42 of 100")
    run = store.get(run_id)
    assert run["progress"] == pytest.approx(0.42) and run["progress_note"] == "boosting round 42 of 100"
    store.set_progress(run_id, 1.7, "over")
    assert store.get(run_id)["progress"] == 1.0
    store.set_progress(run_id, -3, "under")
    assert store.get(run_id)["progress"] == 0.0


def test_progress_of_a_run_that_is_not_running_is_not_written(store):
    queued = store.enqueue("train", "m")
    assert store.set_progress(queued, 0.5, "x") is False
    done = store.new_run("evaluate", trigger="schedule")
    store.set_progress(done, 0.5, "half")
    store.finish(done, "interrupted", error="runner stopped")
    assert store.set_progress(done, 0.9, "late") is False
    assert store.get(done)["progress"] == 0.5 and store.get(queued)["progress"] is None
    assert store.set_progress("no-such-run", 0.5, "x") is False


def test_progress_must_be_a_number(store):
    run_id = store.new_run("train", trigger="manual")
    with pytest.raises(RunError, match="from 0 to 1, got NaN"):
        store.set_progress(run_id, float("nan"), "")


OLD_RUNS_TABLE = """CREATE TABLE runs (id TEXT PRIMARY KEY, task TEXT NOT NULL, model TEXT,
    params TEXT NOT NULL DEFAULT '{}', "trigger" TEXT NOT NULL, status TEXT NOT NULL, sim_day INTEGER,
    created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, output TEXT, error TEXT,
    attempt INTEGER NOT NULL DEFAULT 1, pid INTEGER)"""


def _open_store_at_once(path: str, everyone, failures) -> None:
    everyone.wait()  # every process opens the old file in the same instant
    try:
        RunStore(path)
    except Exception as exc:
        failures.put(str(exc))


def _old_runs_db(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(OLD_RUNS_TABLE)
        conn.execute("INSERT INTO runs (id, task, \"trigger\", status, created_at) VALUES"
                     " ('20260101T000000-abcdef', 'tick', 'schedule', 'succeeded', '2026-01-01T00:00:00.000+00:00')")
        conn.execute("PRAGMA user_version = 1")


def test_a_version_1_runs_db_is_upgraded_in_place_once_even_by_processes_opening_it_at_once(tmp_path):
    # the race this guards against (SQLite refuses the switch to WAL at once while another
    # process reads) lost about one round in ten here: twenty rounds, eight processes each
    fork = multiprocessing.get_context("fork")
    for attempt in range(20):
        path = tmp_path / f"{attempt}" / "runs.db"
        path.parent.mkdir()
        _old_runs_db(path)
        everyone, failures = fork.Barrier(8), fork.Queue()
        processes = [fork.Process(target=_open_store_at_once, args=(str(path), everyone, failures)) for _ in range(8)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        assert [p.exitcode for p in processes] == [0] * 8
        assert failures.empty(), failures.get()
    store = RunStore(path)
    old = store.get("20260101T000000-abcdef")
    assert old["task"] == "tick" and old["progress"] is None and old["progress_note"] is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    assert columns.count("progress") == 1 and columns.count("progress_note") == 1
    run_id = store.new_run("train", trigger="manual")
    assert store.set_progress(run_id, 0.5, "half")


# -- the reports ----------------------------------------------------------------------------------
def test_a_part_maps_its_own_0_1_onto_its_slice_of_the_task():
    whole = Recorder()
    fit = part(whole, 0.1, 0.9)
    for fraction in (0.0, 0.5, 1.0, 2.0):
        fit(fraction, f"at {fraction}")
    assert [round(f, 6) for f, _ in whole.reports] == [0.1, 0.5, 0.9, 0.9]
    assert whole.reports[1][1] == "at 0.5"
    assert part(no_progress, 0.1, 0.9) is no_progress


def test_run_progress_writes_at_most_once_per_interval_but_always_a_new_step_and_the_end(store):
    run_id = store.new_run("train", trigger="manual")
    now = [100.0]
    written = []
    store_set = store.set_progress
    store.set_progress = lambda *args: written.append(args) or store_set(*args)
    report = RunProgress(store, run_id, min_interval_s=1.0, clock=lambda: now[0])
    report(0.1, "round 1")
    now[0] += 0.4
    report(0.2, "round 2")  # too soon, and the same step: dropped
    now[0] += 0.7
    report(0.3, "round 3")
    report(0.4, "round 4")  # dropped
    report(0.9, "saving the version")  # a new step shows at once
    report(1.0, "done")  # the end always shows
    assert [note for _, _, note in written] == ["round 1", "round 3", "saving the version", "done"]
    assert store.get(run_id)["progress"] == 1.0 and store.get(run_id)["progress_note"] == "done"


def test_a_failing_progress_write_is_logged_once_and_never_raised(store, caplog):
    run_id = store.new_run("train", trigger="manual")

    def broken(*_args):
        raise RunError("run store runs.db: database is locked")
    store.set_progress = broken
    report = RunProgress(store, run_id, min_interval_s=0.0)
    with caplog.at_level(logging.WARNING, logger="m5ops.pipeline.progress"):
        report(0.1, "a")
        report(0.2, "b")
    assert len(caplog.records) == 1 and run_id in caplog.text and "database is locked" in caplog.text


def test_a_task_run_by_hand_reports_nowhere(tmp_path, store):
    assert for_run(store.path, "manual") is no_progress and for_run(store.path, None) is no_progress
    assert isinstance(for_run(store.path, "20260101T000000-abcdef"), RunProgress)


def test_progress_text():
    assert progress_text(None) == "starting"
    assert progress_text(0.424, "boosting round 170 of 400") == "42% boosting round 170 of 400"
    assert progress_text(1.0, None) == "100%"


def test_the_terminal_bar_follows_the_run_and_ends_at_its_last_report(store):
    run_id = store.new_run("train", model="gb", trigger="manual")
    out = io.StringIO()
    with terminal_bar(store, run_id, "train gb", interval_s=0.02, file=out, disable=False):
        store.set_progress(run_id, 0.42, "boosting round 170 of 400")
        time.sleep(0.3)
        seen_midway = out.getvalue()
        store.set_progress(run_id, 1.0, "trained gb v1")
    assert "train gb:  42%" in seen_midway and "boosting round 170 of 400" in seen_midway
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert "100%" in last and "trained gb v1" in last


def test_the_terminal_bar_is_off_when_the_output_is_not_a_terminal(store):
    run_id = store.new_run("train", trigger="manual")
    out = io.StringIO()  # not a tty
    with terminal_bar(store, run_id, "train", interval_s=0.01, file=out):
        store.set_progress(run_id, 0.5, "half")
        time.sleep(0.05)
    assert out.getvalue() == ""


# -- what reports ---------------------------------------------------------------------------------
def test_lightgbm_reports_every_boosting_round_between_start_and_end():
    sales = make_sales()
    train, _ = split(make_frame(sales), sales)
    recorder = Recorder()
    rounds = SMALL["lightgbm"]["num_boost_round"]
    get_kind("lightgbm")(**SMALL["lightgbm"]).fit(train, recorder)
    notes = [note for _, note in recorder.reports]
    assert notes[0].startswith("fitting lightgbm on") and notes[-1].startswith("fitted lightgbm in")
    assert notes[1:-1] == [f"boosting round {i} of {rounds}" for i in range(1, rounds + 1)]
    fractions = [fraction for fraction, _ in recorder.reports]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)


@pytest.mark.parametrize("kind", ["hist_gb", "seasonal_naive", "moving_average"])
def test_every_kind_reports_the_start_and_end_of_its_fit(kind):
    sales = make_sales()
    train, _ = split(make_frame(sales), sales)
    recorder = Recorder()
    get_kind(kind)(**SMALL[kind]).fit(train, recorder)
    assert recorder.reports[0][0] == 0.0 and recorder.reports[-1][0] == 1.0
    assert recorder.reports[-1][1].startswith(f"fitted {kind}")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A small workspace with one quick LightGBM model."""
    home = B.make_workspace(tmp_path_factory.mktemp("progress") / "ws", {}, items=1, days=176)
    management.create_model(Workspace(home), "gb", "lightgbm", {"num_boost_round": 3, "num_leaves": 7})
    return home


@pytest.fixture
def workspace(template, tmp_path) -> Workspace:
    return Workspace(shutil.copytree(template, tmp_path / "ws"))


def test_the_training_task_reports_reading_fitting_and_saving_in_order(workspace, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(tasks, "for_run", lambda _path, _run_id: recorder)
    tasks.train(str(workspace.home), "any", "gb")
    notes = [note for _, note in recorder.reports]
    assert notes[0].startswith("reading the features of days")
    assert "boosting round 3 of 3" in notes and "saving the version" in notes
    assert notes.index("boosting round 3 of 3") < notes.index("saving the version")
    assert notes[-1].startswith("trained gb v1")
    fractions = [fraction for fraction, _ in recorder.reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_recorded_run_ends_at_100_percent_and_status_shows_a_running_one(workspace):
    runs = RunStore(workspace.runs_path)
    run_id = runs.new_run("train", model="gb", trigger="manual")
    tasks.train(str(workspace.home), run_id, "gb")
    run = runs.get(run_id)
    assert run["progress"] == 1.0 and run["progress_note"].startswith("trained gb v1")
    other = runs.new_run("evaluate", trigger="manual")
    runs.set_progress(other, 0.25, "scoring gb (1 of 1)")
    status = workspace_status(workspace).as_dict()
    assert status["running"] == [f"{run_id} train-gb", f"{other} evaluate"]
    assert status["progress"][other] == {"fraction": 0.25, "note": "scoring gb (1 of 1)"}
    text = cmd_status(workspace, argparse.Namespace(json=False))
    assert f"{run_id} train-gb (100% trained gb v1; the notebook draws its figures)" in text
    assert f"{other} evaluate (25% scoring gb (1 of 1))" in text


def test_the_evaluation_task_reports_each_model(workspace):
    runs = RunStore(workspace.runs_path)
    tasks.train(str(workspace.home), "manual", "gb")
    run_id = runs.new_run("evaluate", trigger="manual")
    tasks.evaluate(str(workspace.home), run_id)
    assert runs.get(run_id)["progress"] == 1.0 and runs.get(run_id)["progress_note"] == "evaluated 1 model(s)"


# -- the dashboard --------------------------------------------------------------------------------
def test_the_dashboard_snapshot_carries_each_running_run_and_its_progress(workspace):
    runs = RunStore(workspace.runs_path)
    training = runs.new_run("train", model="gb", trigger="manual")
    runs.set_progress(training, 0.5, "boosting round 2 of 3")
    starting = runs.new_run("simulate_day", trigger="schedule")
    queued = runs.enqueue("evaluate")
    snap = WorkspaceReader(workspace.home).snapshot()
    assert [(r.id, r.label, r.fraction, r.note) for r in snap.running] == [
        (training, "train-gb", 0.5, "boosting round 2 of 3"), (starting, "simulate_day", None, "")]
    assert queued not in [r.id for r in snap.running]
    assert all(r.elapsed_s is not None and r.elapsed_s >= 0 for r in snap.running)


def test_the_progress_panel_has_a_bar_per_running_run_and_none_when_idle():
    panel = ProgressPanel()
    assert panel.widget.children == ()
    first = RunningRow("r1", "train-gb", 0.25, "boosting round 1 of 4", 3.0)
    panel.update((first,))
    (box,) = panel.widget.children
    bar = panel.bars["r1"]
    assert bar.bar.value == 0.25 and "25%" in bar.text.value and "boosting round 1 of 4" in bar.text.value
    panel.update((RunningRow("r1", "train-gb", 0.75, "boosting round 3 of 4", 9.0),))
    assert panel.widget.children == (box,) and bar.bar.value == 0.75 and "3 of 4" in bar.text.value
    panel.update(())
    assert panel.widget.children == () and panel.bars == {}


def test_bar_text_says_starting_before_the_first_report_and_escapes_the_note():
    assert bar_text(RunningRow("r", "tick", None, "", 1.0)).startswith("<span class='m5-progress-percent'>starting")
    assert "&lt;b&gt;" in bar_text(RunningRow("r", "train-x", 0.5, "<b>", 1.0))


def test_running_rows_time_each_run_from_its_start():
    now = datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc)
    rows = running_rows([{"id": "a", "task": "train", "model": "m", "started_at": "2026-01-01T00:00:30+00:00",
                          "progress": 0.1, "progress_note": "n"}], now)
    assert rows == (RunningRow("a", "train-m", 0.1, "n", 30.0),)


def _screen_of(command: list[str], env: dict | None = None) -> list[str]:
    """What a 160-column terminal shows after ``command`` ran in it: each line after its last \\r."""
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of a known width, then the command
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        os.execve(command[0], command, env or os.environ.copy())
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    os.close(fd)
    return [line.split("\r")[-1] for line in out.decode(errors="replace").replace("\r\n", "\n").split("\n")]


def test_the_ticks_bar_shows_its_final_line_once_in_a_terminal_and_nothing_off_one(tmp_path):
    from m5ops.pipeline.workspace_init import InitOptions, init_workspace

    home = tmp_path / "ws"
    init_workspace(home, InitOptions(items=1, days=300, subset={"stores": ["CA_1"]}, progress=False))
    for name in Registry(Workspace(home).registry_path).models():
        management.set_active(Workspace(home), name, False)  # arrivals and evaluations only: fast
    command = [sys.executable, "-m", "m5ops.cli", "--home", str(home), "tick", "--days", "2"]
    screen = _screen_of(command)
    assert sum("ticks: 100%" in line for line in screen) == 1, screen
    assert any(line.startswith("today is d_") for line in screen)
    piped = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and "ticks:" not in piped.stderr  # no bar in logs and pipes
