"""The dashboard below the browser: state read from the stores, the actions, the create form, the server's refusals."""
from __future__ import annotations

import asyncio
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

from m5ops.dashboard import actions, server  # noqa: E402
from m5ops.dashboard.app import FAST_S, Dashboard, header_html  # noqa: E402
from m5ops.dashboard.charts import MetricChart  # noqa: E402
from m5ops.dashboard.create_form import CreateForm, check_form  # noqa: E402
from m5ops.dashboard.state import (  # noqa: E402
    WorkspaceReader, format_duration, latest_metrics, metric_lines, model_rows, run_rows,
)
from m5ops.dashboard.widgets import Actions, Messages  # noqa: E402
from m5ops.errors import M5opsError, RegistryError  # noqa: E402
from m5ops.models import get_kind  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402
from m5ops.stores.metrics import MetricStore  # noqa: E402
from m5ops.stores.runner_state import RunnerState  # noqa: E402
from m5ops.stores.runs import RunStore  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402

MODELS = {"naive": "seasonal_naive", "avg": "moving_average"}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A small workspace with two untrained baseline models and 10 days of seeded metrics, made once."""
    home = B.make_workspace(tmp_path_factory.mktemp("dash") / "ws", MODELS, items=1, days=176)
    B.seed_history(home, days=10)
    return home


@pytest.fixture
def workspace(template, tmp_path) -> Workspace:
    return Workspace(shutil.copytree(template, tmp_path / "ws"))


def history(rows):
    """A metrics history frame from (sim_day, model, version, metric, value) rows."""
    return pd.DataFrame(rows, columns=["sim_day", "model", "version", "metric", "value"])


# -- state: pure shaping ------------------------------------------------------------------------
def model_record(active=True, versions=("v1",)):
    return {"kind": "lightgbm", "schedule": {"active": active, "every_days": 7},
            "versions": [{"id": v, "sim_date": f"2016-01-0{i + 1}"} for i, v in enumerate(versions)],
            "current_version": versions[-1] if versions else None}


def test_model_rows_show_state_versions_latest_metrics_of_the_current_version_and_open_trainings():
    models = {"a": model_record(), "b": model_record(active=False, versions=("v1", "v2")), "c": model_record(versions=())}
    latest = latest_metrics(history([(5, "b", "v1", "mae", 9.0), (6, "b", "v2", "mae", 1.5), (5, "b", "v2", "mae", 7.0),
                                     (6, "a", "v1", "wmape", 0.5)]))
    open_runs = [{"task": "train", "model": "a", "status": "queued"}, {"task": "train", "model": "a", "status": "running"},
                 {"task": "evaluate", "model": None, "status": "running"}]
    rows = {r.name: r for r in model_rows(models, latest, open_runs)}
    assert [r.state for r in rows.values()] == ["active", "paused", "active"]
    assert (rows["b"].versions, rows["b"].current, rows["b"].last_trained) == (2, "v2", "2016-01-02")
    assert dict(rows["b"].metrics)["mae"] == 1.5  # v2's newest day, not v1's
    assert dict(rows["a"].metrics) == {"mae": None, "wmape": 0.5, "rmse": None, "tweedie": None, "wrmsse": None}
    assert (rows["a"].pending, rows["b"].pending, rows["c"].pending) == ("running", None, None)
    assert rows["c"].last_trained is None and rows["c"].current is None


def test_metric_lines_align_models_on_days_with_gaps_and_take_the_newest_version_of_a_day():
    frame = history([(1, "a", "v1", "wmape", 0.5), (2, "a", "v1", "wmape", 0.6), (2, "a", "v10", "wmape", 0.4),
                     (2, "a", "v9", "wmape", 0.9), (2, "b", "v1", "wmape", 0.7), (2, "b", "v1", "mae", 3.0)])
    dates, lines = metric_lines(frame, "wmape", ["a", "b", "gone"])
    assert list(pd.DatetimeIndex(dates).strftime("%Y-%m-%d")) == ["2011-01-29", "2011-01-30"]
    np.testing.assert_allclose(lines["a"], [0.5, 0.4])  # v10 is newer than v9
    np.testing.assert_allclose(lines["b"], [np.nan, 0.7])
    assert "gone" not in lines
    assert metric_lines(frame, "rmse", ["a"])[1] == {}


def test_run_rows_mark_deleted_models_and_time_runs():
    runs = [{"id": "r1", "task": "train", "model": "gone", "trigger": "manual", "status": "succeeded",
             "created_at": "2026-01-01T00:00:00.000+00:00", "started_at": "2026-01-01T00:00:00.000+00:00",
             "finished_at": "2026-01-01T00:01:05.000+00:00", "error": None, "output": "x.ipynb"},
            {"id": "r2", "task": "tick", "model": None, "trigger": "manual", "status": "queued",
             "created_at": "2026-01-01T00:00:00.000+00:00", "started_at": None, "finished_at": None,
             "error": None, "output": None}]
    first, second = run_rows(runs, live={"kept"})
    assert (first.model_deleted, first.duration_s, first.label) == (True, 65.0, "train-gone")
    assert (second.model_deleted, second.duration_s, second.label) == (False, None, "tick")


@pytest.mark.parametrize("seconds, text", [(None, "-"), (3.25, "3.2 s"), (65, "1 min 05 s"), (600, "10 min 00 s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# -- state: reading a workspace ------------------------------------------------------------------
def test_reader_snapshot_shows_the_workspace_and_rereads_the_registry_only_when_it_changed(workspace):
    reader = WorkspaceReader(workspace.home)
    snap = reader.snapshot()
    h = snap.header
    assert (h.today, h.series, h.days, h.held_back_left, h.runner_alive) == ("d_120", 70, 120, 56, False)
    assert h.rows == 120 * 70 and h.runner_command == f"m5ops --home {workspace.home} runner"
    assert [r.name for r in snap.models] == list(MODELS) and snap.live == tuple(MODELS)
    assert len(snap.history) == 2 * 10 and set(snap.history["metric"]) == {"wmape"} and len(snap.totals[0]) == 56
    assert len(reader.snapshot("mae").history) == 2 * 10
    first = reader.registry_data()
    assert reader.registry_data() is first  # unchanged file: not read again
    Registry(workspace.registry_path).set_active("naive", False)
    assert reader.snapshot().models[0].state == "paused"


def test_reader_latest_metrics_in_sql_match_the_full_history(workspace):
    reader = WorkspaceReader(workspace.home)
    before = reader.snapshot().models[1].metrics
    assert reader._latest == latest_metrics(MetricStore(workspace.runs_path).history())
    assert dict(before)["mae"] is not None  # the seeded evaluations of the current version
    MetricStore(workspace.runs_path).record(999, "2013-09-21", "avg", "v9", {"mae": 0.25}, (972, 999))
    assert reader.snapshot().models[1].metrics == before  # v9 is not avg's current version
    assert reader._latest[("avg", "v9")] == {"mae": 0.25}


def test_reader_lists_deleted_models_that_have_metrics(workspace):
    actions.delete(workspace, "avg")
    snap = WorkspaceReader(workspace.home).snapshot()
    assert snap.live == ("naive",) and snap.deleted == ("avg",)
    assert any(r.model == "avg" and r.model_deleted for r in snap.runs)


def test_header_says_how_to_start_a_missing_runner(workspace):
    text = header_html(WorkspaceReader(workspace.home).snapshot().header)
    assert "m5-runner-down" in text and f"m5ops --home {workspace.home} runner" in text


# -- actions ------------------------------------------------------------------------------------
def test_train_now_queues_a_manual_training_once(workspace):
    message = actions.train_now(workspace, "naive")
    (run,) = RunStore(workspace.runs_path).queued()
    assert (run["task"], run["model"], run["trigger"], run["params"]) == ("train", "naive", "manual",
                                                                         {"model": "naive", "manual": True, "actor": "dashboard"})
    assert run["id"] in message and "no runner is alive" in message
    with pytest.raises(RegistryError, match="already has a training queued"):
        actions.train_now(workspace, "naive")
    with pytest.raises(RegistryError, match="no model named"):
        actions.train_now(workspace, "nope")


@pytest.mark.parametrize("action, task, params", [(actions.evaluate_all, "evaluate", {"models": None}),
                                                  (actions.run_day, "tick", {"days": 1})])
def test_evaluate_all_and_run_a_day_queue_requests_for_the_runner(workspace, action, task, params):
    action(workspace)
    (run,) = RunStore(workspace.runs_path).queued()
    assert (run["task"], run["params"], run["trigger"]) == (task, params, "manual")


def test_pause_resume_delete_change_the_registry_and_keep_the_runs(workspace):
    registry = Registry(workspace.registry_path)
    actions.pause(workspace, "naive")
    assert registry.get("naive")["schedule"]["active"] is False
    actions.resume(workspace, "naive")
    assert registry.get("naive")["schedule"]["active"] is True
    runs_before = RunStore(workspace.runs_path).runs(model="naive", limit=None)
    actions.train_now(workspace, "naive")
    actions.delete(workspace, "naive")
    assert "naive" not in registry.models() and "naive" in registry.deleted()
    kept = RunStore(workspace.runs_path).runs(model="naive", limit=None)
    assert len(kept) == len(runs_before) + 1 and kept[0]["status"] == "cancelled"  # queued request withdrawn


# -- the create form ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, raw, fields", [
    ("good-one", {}, set()),
    ("Bad Name", {}, {"name"}),
    ("avg", {}, {"name"}),  # taken
    ("ok", {"num_leaves": "1"}, {"num_leaves"}),  # below the range
    ("ok", {"learning_rate": "fast", "num_boost_round": "2.5"}, {"learning_rate", "num_boost_round"}),
    ("", {"seed": "-1"}, {"name", "seed"}),
])
def test_check_form_reports_each_bad_field(name, raw, fields):
    checked = check_form(name, "lightgbm", raw, taken={"avg"})
    assert set(checked.errors) == fields
    if not fields:
        assert checked.params == get_kind("lightgbm").schema.validate({}), "blank fields take the defaults"


def test_form_widgets_follow_the_kind_schema_with_defaults(workspace):
    form = CreateForm(workspace, Actions(Messages()))
    default = get_kind("lightgbm").schema.validate({})["num_boost_round"]
    assert form.values()["num_boost_round"] == str(default)
    form.kind.value = "moving_average"
    assert set(form.values()) == {p["name"] for p in __import__("m5ops.models").models.describe_kinds()["moving_average"]["params"]}


def run_async(coro_fn):
    """Run ``coro_fn()`` on a fresh event loop (as the Voila kernel's loop would)."""
    return asyncio.run(coro_fn())


async def settle(runner: Actions) -> None:
    """Wait for the actions in flight."""
    while runner.pending:
        await asyncio.gather(*list(runner.pending))


def test_form_refuses_bad_input_beside_the_field_and_creates_nothing(workspace):
    async def scenario():
        runner = Actions(Messages())
        form = CreateForm(workspace, runner, taken=lambda: Registry(workspace.registry_path).models())
        form.name.value = "Bad Name!"
        form.inputs["num_leaves"].value = "1"
        checked = form.submit()
        await settle(runner)
        return form, checked, runner
    form, checked, runner = run_async(scenario)
    assert not checked.ok
    assert "invalid model name" in form.errors["name"].value and "out of range" in form.errors["num_leaves"].value
    assert form.errors["learning_rate"].value == ""
    assert "nothing was created" in runner.messages.box.children[0].value
    assert set(Registry(workspace.registry_path).models()) == set(MODELS)


def test_form_creates_a_valid_model_through_the_locked_path(workspace):
    async def scenario():
        runner = Actions(Messages())
        form = CreateForm(workspace, runner)
        form.name.value = "quick"
        form.inputs["num_boost_round"].value = "20"
        form.submit()
        await settle(runner)
        return form, runner
    form, runner = run_async(scenario)
    model = Registry(workspace.registry_path).get("quick")
    assert model["kind"] == "lightgbm" and model["params"]["num_boost_round"] == 20
    assert form.name.value == "" and "created model quick" in runner.messages.box.children[0].value
    assert "m5-message-ok" in runner.messages.box.children[0]._dom_classes


def test_an_action_refused_by_the_registry_shows_as_an_error_message(workspace):
    async def scenario():
        runner = Actions(Messages())
        runner.run("Pause ghost", lambda: actions.pause(workspace, "ghost"))
        await settle(runner)
        return runner
    item = run_async(scenario).messages.box.children[0]
    assert "Pause ghost refused: no model named 'ghost'" in item.value and "m5-message-error" in item._dom_classes


# -- charts and the whole app -------------------------------------------------------------------
def test_metric_chart_draws_one_line_per_model_even_for_a_single_day_and_hides_deleted_models():
    chart = MetricChart()
    frame = history([(3, m, "v1", "wmape", v) for m, v in [("a", 0.1), ("b", 0.2), ("old", 0.3)]])
    chart.update(frame, live=("a", "b"), deleted=("old",))
    assert list(chart.lines.labels) == ["a", "b"] and np.asarray(chart.lines.y).shape == (2, 2)
    chart.show_deleted.value = True
    assert list(chart.lines.labels) == ["a", "b", "old (deleted)"]
    chart.models.value = ("b",)  # the user's choice sticks across refreshes
    chart.update(frame, live=("a", "b"), deleted=("old",))
    assert list(chart.lines.labels) == ["b"]


def test_dashboard_refresh_picks_up_changes_made_elsewhere(workspace):
    async def scenario():
        dash = Dashboard(workspace.home, interval=0.05)
        assert [v.row.state for v in dash.models.views.values()] == ["active", "active"]
        Registry(workspace.registry_path).set_active("avg", False)
        RunStore(workspace.runs_path).enqueue("train", model="naive", params={"model": "naive", "manual": True})
        dash.start()
        await asyncio.sleep(0.5)
        dash.stop()
        return dash
    dash = run_async(scenario)
    assert dash.models.views["avg"].row.state == "paused" and dash.models.views["avg"].toggle.description == "Resume"
    assert dash.models.views["naive"].train.disabled and "queued" in dash.models.views["naive"].cells.value
    assert "train-naive" in dash.header.value


def test_an_action_cuts_the_slow_wait_short_so_its_effect_shows_at_the_fast_pace(workspace):
    async def scenario():
        dash = Dashboard(workspace.home, interval=60.0).start()
        await asyncio.sleep(0.2)  # the loop is now in its 60 s wait
        dash.refresh_soon()  # as every action does when it is done
        await asyncio.sleep(0.1)
        Registry(workspace.registry_path).set_active("avg", False)  # what the action set off, a moment later
        await asyncio.sleep(FAST_S + 0.6)
        dash.stop()
        return dash
    dash = run_async(scenario)
    assert dash.models.views["avg"].row.state == "paused"


# -- server ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True),
                                            ("::1", True), ("0.0.0.0", False), ("192.168.1.5", False),
                                            ("example.org", False)])
def test_is_loopback(host, loopback):
    assert server.is_loopback(host) is loopback


def test_a_non_loopback_address_needs_a_token(workspace):
    with pytest.raises(server.DashboardError, match="needs a token"):
        server.serve(workspace, host="0.0.0.0", port=B.free_port())
    assert isinstance(server.DashboardError("x"), M5opsError)


def test_a_port_in_use_is_refused_with_the_fix():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(server.DashboardError, match="pick another port with --port"):
            server.check_address("127.0.0.1", taken.getsockname()[1], None)


def test_voila_command_binds_the_address_and_culls_idle_kernels():
    command = server.voila_command("127.0.0.1", 9999, None)
    assert command[3].endswith("dashboard.ipynb") and Path(command[3]).is_file()
    assert {"--no-browser", "--port=9999", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
            "--MappingKernelManager.cull_idle_timeout=60", "--MappingKernelManager.untracked_message_types=comm_msg"
            } <= set(command)
    assert not any("token" in part for part in command)
    remote = server.voila_command("0.0.0.0", 9999, "s3cret")
    assert "--Voila.token=s3cret" in remote and "--VoilaConfiguration.show_tracebacks=True" not in remote


# -- the demo ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_starts_the_runner_and_the_dashboard_and_ctrl_c_stops_both(workspace):
    import signal
    import subprocess
    import time

    port = B.free_port()
    demo = subprocess.Popen([sys.executable, "-m", "m5ops.cli.demo", "--home", str(workspace.home), "--port", str(port),
                             "--day-seconds", "3600"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "demo: open" in line:
                break
        assert f"http://127.0.0.1:{port}/" in lines[-1], "".join(lines)
        runs = RunnerState(workspace.runs_path)
        deadline = time.monotonic() + 60
        while not runs.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert runs.alive()
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, out
    assert "demo: stopped" in out and runs.heartbeat() is None  # the runner stopped cleanly
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.parametrize("models", [["lgb"], ["lgb", "naive"]])
def test_the_target_psi_chart_draws_a_first_day_with_one_line_per_model(tmp_path, models):
    # bqplot squeezes its arrays: one model on one day came out as a scalar (a TraitError on
    # every refresh), several models on one day as a single line through all of them
    from m5ops.dashboard.drift_panel import DriftPanel
    from m5ops.stores.layout import Workspace

    report = {name: {"version": "v1", "sim_day": 120, "reference": [1, 100], "current": [93, 120],
                     "columns": [{"column": "sales", "kind": "numeric", "target": True, "psi": 0.02, "band": "stable",
                                  "wasserstein": 0.1, "jensen_shannon": None, "n_reference": 50, "n_current": 20}],
                     "target_history": [{"sim_day": 120, "version": "v1", "psi": 0.02 * (i + 1)}]}
              for i, name in enumerate(models)}
    panel = DriftPanel(Workspace(tmp_path))
    panel.show(report)
    assert np.atleast_2d(panel.lines.y).shape == (len(models), 2)  # one line a model (bqplot squeezes one to 1-D)
    assert list(panel.lines.labels) == models
