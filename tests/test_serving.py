"""Production: resolution, the promotion rule on live windows, promote, rollback, retention, deletion, lineage.

Live WRMSSE rows are written as the live scoring writes them (``MetricStore.record(...,
source="live", horizon=0, issue_day=i)`` at ``sim_day = i + 28``), to simulate issues.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

from m5ops.dashboard.production_state import forecast_plot, serving_rows  # noqa: E402
from m5ops.dashboard.state import WorkspaceReader, scope_horizon  # noqa: E402
from m5ops.pipeline import lifecycle, promotion, retention, serving  # noqa: E402
from m5ops.pipeline.lineage import _git_state, feature_set_hash  # noqa: E402
from m5ops.pipeline.modeling import WorkspaceData, train_version  # noqa: E402
from m5ops.pipeline.tasks import evaluate, issue_forecast  # noqa: E402
from m5ops.stores.audit import AuditLog  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.ledger import ForecastLedger, Issue  # noqa: E402
from m5ops.stores.metrics import MetricStore  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402
from m5ops.stores.serving import ServingStore  # noqa: E402

MODELS = {"naive": "seasonal_naive", "avg": "moving_average", "avg7": "moving_average"}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Three baselines with one version each, evaluated once (avg has the best backtest), made once."""
    home = B.make_workspace(tmp_path_factory.mktemp("serving") / "ws", {}, items=1, days=176)
    workspace = Workspace(home)
    for name, kind in MODELS.items():
        lifecycle.create_model(workspace, name, kind, {"window": 7} if name == "avg7" else {})
    data = WorkspaceData.open(home)
    for name in MODELS:
        train_version(data, name)
    evaluate(str(home), "seed-evaluation")
    return home


@pytest.fixture
def ws(template, tmp_path) -> Workspace:
    return Workspace(shutil.copytree(template, tmp_path / "ws"))


def backtest(ws: Workspace) -> dict[str, float]:
    return serving.backtest_wrmsse(ws, Registry(ws.registry_path).models())


def seed_live(ws: Workspace, model: str, scores: dict[int, float], version: str = "v1") -> None:
    """Live WRMSSE of complete issue windows, as the live scoring records them."""
    metrics = MetricStore(ws.runs_path)
    for issue_day, value in scores.items():
        metrics.record(issue_day + 28, "2011-01-01", model, version, {"wrmsse": value}, (issue_day + 1, issue_day + 28),
                       source="live", level="all", horizon=0, issue_day=issue_day)


def cli(ws: Workspace, *args: str) -> tuple[int, str, str]:
    """The m5ops command as a user runs it: (exit status, stdout, stderr)."""
    done = B.m5ops(ws.home, *args, check=False)
    return done.returncode, done.stdout, done.stderr


def days(n: int, first: int = 40) -> list[int]:
    return list(range(first, first + n))


# -- resolution ------------------------------------------------------------------------------------------
def test_until_the_first_promotion_production_is_the_best_backtest_and_the_log_says_so(ws):
    scores = backtest(ws)
    best = min(scores, key=scores.get)
    assert best == "avg" and set(scores) == set(MODELS)
    found = serving.resolve(ws)
    assert (found.model, found.version, found.basis) == ("avg", "v1", "backtest")
    assert serving.serving_model(ws) == ("avg", "v1")
    entry = serving.decide(ws)
    assert (entry.action, entry.actor, entry.model) == ("followed_backtest", "rule", "avg")
    assert serving.decide(ws) is None  # nothing moved: nothing new in the log
    assert [e.action for e in AuditLog(ws.runs_path).entries()] == ["followed_backtest", "accepted", "accepted",
                                                                    "accepted"]


def test_no_model_with_a_version_means_nothing_serves(tmp_path):
    home = B.make_workspace(tmp_path / "ws", {"naive": "seasonal_naive"}, items=1, days=176)
    assert serving.serving_model(Workspace(home)) is None and serving.decide(Workspace(home)) is None


# -- the promotion rule ----------------------------------------------------------------------------------
@pytest.mark.parametrize("challenger, windows, mode, promoted", [
    (0.80, 7, "auto", True),  # 11% better on 7 complete windows
    (0.80, 6, "auto", False),  # not enough windows yet
    (0.87, 7, "auto", False),  # 3% better: inside the margin
    (0.80, 7, "manual", False),  # the rule never acts under manual promotion
])
def test_the_rule_promotes_a_clearly_better_challenger_after_enough_windows(ws, challenger, windows, mode, promoted):
    ServingStore(ws.runs_path).set({"promotion": mode})
    seed_live(ws, "avg", {day: 0.90 for day in days(10)})  # production (best backtest)
    seed_live(ws, "naive", {day: challenger for day in days(windows, first=50 - windows)})
    seed_live(ws, "avg7", {day: 0.95 for day in days(10)})  # a worse challenger
    serving.decide(ws)
    found = serving.resolve(ws)
    if not promoted:
        assert (found.model, found.basis) == ("avg", "backtest")
        assert AuditLog(ws.runs_path).last(actions=("promoted",)) is None
        return
    assert (found.model, found.version, found.basis) == ("naive", "v1", "promoted")
    entry = AuditLog(ws.runs_path).last(actions=("promoted",))
    assert (entry.actor, entry.model, entry.previous_model) == ("rule", "naive", "avg")
    assert entry.evidence["issue_days"] == days(7, first=43)  # the last 7 windows both have
    assert entry.evidence["challenger_wrmsse"] == pytest.approx(0.80)
    assert entry.evidence["production_wrmsse"] == pytest.approx(0.90)
    assert "11.1% better" in entry.reason
    serving.decide(ws)  # avg is no better than naive now: it stays
    assert serving.resolve(ws).model == "naive"


def test_the_rule_compares_the_same_windows_and_takes_the_newest_version_of_a_day():
    scores = {"prod": {1: 1.0, 2: 1.0, 3: 1.0, 4: 5.0}, "ch": {2: 0.5, 3: 0.5, 4: 0.5, 5: 0.1}}
    found = promotion.challenge("prod", "ch", scores, windows=3, margin=0.05)
    assert found.windows == (2, 3, 4) and found.production_wrmsse == pytest.approx(7 / 3)
    assert promotion.challenge("prod", "ch", scores, windows=4, margin=0.05) is None
    frame = pd.DataFrame({"issue_day": [7, 7], "version": ["v10", "v9"], "value": [0.4, 0.9]})
    assert promotion._by_issue(frame) == {7: 0.4}


def test_the_tick_runs_the_decision_step(ws):
    serving.promote(ws, "avg", actor="cli")
    seed_live(ws, "avg", {day: 0.90 for day in days(7)})
    seed_live(ws, "avg7", {day: 0.60 for day in days(7)})
    B.m5ops(ws.home, "tick")  # arrival, evaluation, the decision, due trainings: real notebooks
    entry = AuditLog(ws.runs_path).last(actions=("promoted",))
    assert (entry.model, entry.actor, entry.previous_model) == ("avg7", "rule", "avg")
    assert serving.serving_model(ws) == ("avg7", "v1")


# -- by hand ---------------------------------------------------------------------------------------------
def test_promote_and_rollback_from_the_command_line(ws):
    data = WorkspaceData.open(ws.home)
    train_version(data, "naive", manual=True, actor="cli")  # naive v2, current, v1 kept
    out = B.m5ops(ws.home, "promote", "naive").stdout
    assert "naive v2 is in production" in out and serving.serving_model(ws) == ("naive", "v2")
    out = B.m5ops(ws.home, "rollback", "naive").stdout  # default: the version v2 replaced
    assert "naive is back at v1 (was v2)" in out
    assert serving.serving_model(ws) == ("naive", "v1")  # the serving model's version follows
    model = Registry(ws.registry_path).get("naive")
    assert [v["status"] for v in model["versions"]] == ["current", "retired"]
    B.m5ops(ws.home, "rollback", "naive", "--to", "v2")
    assert serving.serving_model(ws) == ("naive", "v2")
    history = json.loads(B.m5ops(ws.home, "history", "--json").stdout)
    assert [(e["action"], e["version"], e["previous_version"], e["actor"]) for e in history[:3]] == [
        ("rolled_back", "v2", "v1", "cli"), ("rolled_back", "v1", "v2", "cli"), ("promoted", "v2", "v1", "cli")]
    assert history[1]["evidence"]["serving"] is True and history[1]["evidence"]["from"]["version"] == "v2"
    assert history[2]["previous_model"] == "avg" and "naive" in history[2]["evidence"]
    text = B.m5ops(ws.home, "serving").stdout
    assert text.startswith("production: naive v2 since d_120") and "avg v1: live - (no complete issue window" in text


def test_promote_a_given_version_makes_it_current(ws):
    train_version(WorkspaceData.open(ws.home), "avg7")
    status, out, _ = cli(ws, "promote", "avg7", "--version", "v1")
    assert status == 0 and serving.serving_model(ws) == ("avg7", "v1")
    assert Registry(ws.registry_path).get("avg7")["current_version"] == "v1"


@pytest.mark.parametrize("args, words", [
    (["promote", "nosuch"], "no model named 'nosuch'; known models: avg, avg7, fresh, naive"),
    (["promote", "fresh"], "fresh has no version yet, so it cannot serve: train it first ('m5ops train fresh')"),
    (["promote", "naive", "--version", "v9"], "model 'naive' has no version 'v9'; its versions: v1"),
    (["rollback", "naive"], "no earlier one to go back to by default; name one with --to VERSION (versions: v1)"),
    (["rollback", "naive", "--to", "v1"], "naive v1 is already the current version"),
    (["rollback", "fresh"], "fresh has no version yet: there is nothing to roll back"),
    (["rollback", "naive", "--to", "v7"], "its versions: v1"),
    (["settings", "--gate", "15"], "write 10% or 0.10"),
    (["settings", "--promotion-windows", "0"], "promotion windows must lie in 1..365"),
    (["settings", "--model", "naive", "--keep-versions", "3"], "with --model only --gate can be set"),
    (["settings", "--model", "nosuch", "--gate", "5%"], "no model named 'nosuch'"),
])
def test_refusals_exit_2_name_the_fix_and_change_nothing(ws, args, words):
    lifecycle.create_model(ws, "fresh", "seasonal_naive")
    registry, audit = ws.registry_path.read_bytes(), AuditLog(ws.runs_path).fingerprint()
    status, _, err = cli(ws, *args)
    assert status == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert ws.registry_path.read_bytes() == registry and AuditLog(ws.runs_path).fingerprint() == audit


def test_promoting_what_already_serves_is_refused(ws):
    serving.promote(ws, "avg", actor="cli")
    status, _, err = cli(ws, "promote", "avg")
    assert status == 2 and "avg v1 already serves" in err


def test_a_dashboard_confirmation_that_went_stale_is_refused(ws):
    train_version(WorkspaceData.open(ws.home), "naive")  # v2 arrived after the page showed v1
    with pytest.raises(Exception, match="current version is now v2, not v1 as shown"):
        serving.promote(ws, "naive", actor="dashboard", expected="v1")


# -- retention -------------------------------------------------------------------------------------------
def test_retention_keeps_the_newest_artifacts_and_retires_the_rest(ws):
    ServingStore(ws.runs_path).set({"keep_versions": "2"})
    data = WorkspaceData.open(ws.home)
    for _ in range(3):
        train_version(data, "naive")  # v2, v3, v4
    model = Registry(ws.registry_path).get("naive")
    assert [(v["id"], v["status"], v["artifact_kept"]) for v in model["versions"]] == [
        ("v1", "retired", False), ("v2", "retired", False), ("v3", "retired", True), ("v4", "current", True)]
    assert sorted(p.name for p in (ws.models_dir / "naive").iterdir()) == ["v3", "v4"]
    assert model["versions"][0]["lineage"]["train_days"] > 0  # the record and its lineage stay
    status, _, err = cli(ws, "rollback", "naive", "--to", "v1")
    assert status == 2 and "naive v1 is retired and its artifact was removed by retention" in err
    assert "pick a kept version: one of v3" in err
    assert cli(ws, "rollback", "naive")[0] == 0  # v4 replaced v3, which is kept
    assert Registry(ws.registry_path).get("naive")["current_version"] == "v3"


def test_retention_spares_the_current_version_even_when_older_than_the_newest():
    versions = [{"id": f"v{i}", "artifact_kept": True} for i in (1, 2, 3, 4)]
    model = {"versions": versions, "current_version": "v2"}
    assert retention.to_remove(model, keep=1) == ["v1", "v3"]
    assert retention.to_remove(model, keep=3) == ["v1"]
    versions[0]["artifact_kept"] = False  # gone already: nothing to remove twice
    assert retention.to_remove(model, keep=3) == []


# -- deleting the serving model -----------------------------------------------------------------------
@pytest.mark.parametrize("live, basis", [
    (True, "the best live WRMSSE"),
    (False, "no challenger has live scores yet: the best backtest WRMSSE"),
])
def test_deleting_the_serving_model_hands_production_to_the_best_challenger(ws, live, basis):
    serving.promote(ws, "avg", actor="cli")
    scores = backtest(ws)
    if live:  # the challenger worse by backtest is the better one live: live decides
        heir = max(("naive", "avg7"), key=scores.get)
        seed_live(ws, heir, {day: 0.7 for day in days(7)})
        seed_live(ws, ({"naive", "avg7"} - {heir}).pop(), {day: 0.9 for day in days(7)})
    else:
        heir = min(("naive", "avg7"), key=scores.get)
    lifecycle.delete_model(ws, "avg", actor="dashboard")
    found = serving.resolve(ws)
    assert (found.model, found.basis) == (heir, "promoted")
    entry = AuditLog(ws.runs_path).last()
    assert (entry.action, entry.actor, entry.model, entry.previous_model) == ("handed_over", "dashboard", heir, "avg")
    assert entry.reason.startswith("avg was deleted while in production") and basis in entry.reason


def test_deleting_the_only_model_in_production_says_nothing_serves_now(tmp_path):
    home = B.make_workspace(tmp_path / "ws", {"naive": "seasonal_naive"}, items=1, days=176)
    ws = Workspace(home)
    train_version(WorkspaceData.open(home), "naive")
    assert serving.serving_model(ws) == ("naive", "v1")
    lifecycle.delete_model(ws, "naive")
    entry = AuditLog(ws.runs_path).last()
    assert entry.action == "handed_over" and "no other model has a scored version" in entry.reason
    assert serving.serving_model(ws) is None


def test_deleting_a_challenger_changes_nothing_in_production(ws):
    lifecycle.delete_model(ws, "naive")
    assert serving.serving_model(ws) == ("avg", "v1")
    assert AuditLog(ws.runs_path).last().action == "accepted"


# -- lineage ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_lineage_of_a_version_trained_by_the_cli(ws):
    B.m5ops(ws.home, "train", "avg7")
    shown = json.loads(B.m5ops(ws.home, "models", "--json").stdout)
    assert shown["production"]["model"] == "avg"
    version = shown["models"]["avg7"]["versions"][-1]
    lineage = version["lineage"]
    data = WorkspaceData.open(ws.home)
    start, end = data.split.train_range(None)
    assert version["id"] == "v2" and version["status"] == "current"
    # a moving average reads the last `window` days of sales, no more
    assert (lineage["data_cutoff_day"], lineage["train_start_day"], lineage["train_days"]) == (end, end - 6, 7)
    assert lineage["rows"] == version["rows"] > 0 and lineage["params"] == {"window": 7}
    assert lineage["features"] == 2 and lineage["feature_set_hash"] == feature_set_hash(["series", "day"])
    assert lineage["code"]["package"] == "0.1.0" and re.fullmatch(r"[0-9a-f]{40}", lineage["code"]["commit"])
    run = [r for r in json.loads(B.m5ops(ws.home, "runs", "--json").stdout) if r["task"] == "train"][0]
    assert lineage["run_id"] == run["id"] and lineage["notebook"] == run["output"] and Path(run["output"]).is_file()
    assert lineage["duration_s"] >= 0 and lineage["backtest"]["wrmsse"] == version["gate"]["candidate"]
    assert set(lineage["backtest"]) >= {"mae", "wmape", "rmse", "tweedie", "wrmsse", "window"}
    statuses = {name: [v["status"] for v in model["versions"]] for name, model in shown["models"].items()}
    assert statuses == {"naive": ["current"], "avg": ["serving"], "avg7": ["retired", "current"]}


def test_no_git_commit_outside_a_checkout_nor_for_an_untracked_copy_inside_one(tmp_path):
    assert _git_state(tmp_path) == {"commit": None}
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    copy = tmp_path / "repo" / ".venv" / "m5ops"
    copy.mkdir(parents=True)
    (copy / "__init__.py").write_text("")
    assert _git_state(copy) == {"commit": None}


# -- what the dashboard and `m5ops serving` show -------------------------------------------------------
def test_the_serving_overview_shows_live_accuracy_or_why_there_is_none(ws):
    seed_live(ws, "naive", {day: 0.5 + 0.01 * i for i, day in enumerate(days(9))})
    view = json.loads(B.m5ops(ws.home, "serving", "--json").stdout)
    assert view["production"]["model"] == "avg" and view["production"]["live"]["wrmsse"] is None
    naive = next(row for row in view["challengers"] if row["model"] == "naive")
    assert naive["live"]["windows"] == 7 and naive["live"]["issue_days"] == days(7, first=42)
    assert naive["live"]["wrmsse"] == pytest.approx(np.mean([0.5 + 0.01 * i for i in range(2, 9)]))
    rows = serving_rows(serving.overview(ws), Registry(ws.registry_path).models())
    assert [(r.model, r.role) for r in rows] == [("avg", "production"), ("naive", "challenger"), ("avg7", "challenger")]
    assert rows[0].rollback_to is None and "first one" in rows[0].rollback_note


def test_the_forecast_chart_sums_each_aggregate_of_an_issued_forecast():
    series = pd.DataFrame({"item_id": ["A", "B", "C"], "dept_id": ["FOODS_1", "FOODS_1", "HOBBIES_1"],
                           "cat_id": ["FOODS", "FOODS", "HOBBIES"], "store_id": ["CA_1", "TX_1", "TX_1"],
                           "state_id": ["CA", "TX", "TX"]})
    recent = np.arange(3 * 56, dtype=float).reshape(3, 56)
    values = np.repeat([[1.0], [2.0], [4.0]], 28, axis=1).astype(np.float32)
    plot = forecast_plot(series, recent, 45, Issue("m", "v3", 100, values, ("holdback",) * 28))
    assert plot.actual_dates[0] == "2011-03-14" and len(plot.actual_dates) == 56 and len(plot.forecast_dates) == 28
    assert plot.forecast["total"] == (7.0,) * 28 and plot.forecast["state TX"] == (6.0,) * 28
    assert plot.forecast["department FOODS_1"] == (3.0,) * 28 and plot.actual["total"][0] == 0 + 56 + 112
    assert list(plot.actual)[:3] == ["total", "state CA", "state TX"]
    empty = forecast_plot(series, recent, 45, None)
    assert empty.forecast_dates == () and empty.forecast["total"] == () and len(empty.actual["store TX_1"]) == 56


def test_the_panel_draws_the_serving_models_latest_issue_as_soon_as_it_is_issued(ws):
    reader = WorkspaceReader(ws.home)
    before = reader.snapshot().production.forecast
    assert before.model is None and before.forecast_dates == ()
    issue_forecast(str(ws.home), "issue-now")  # the same day: only the ledger changed
    plot = reader.snapshot().production.forecast
    issued = ForecastLedger.of(ws).latest("avg")
    assert (plot.model, plot.version, plot.issue_day) == ("avg", "v1", issued.issue_day)
    assert len(plot.forecast_dates) == 28
    np.testing.assert_allclose(plot.forecast["total"], issued.values.sum(axis=0), rtol=1e-5)


def test_the_monitoring_scope_picks_live_rows_by_horizon_or_window(ws):
    metrics = MetricStore(ws.runs_path)
    for issue_day, horizon, value in ((100, 1, 1.0), (100, 2, 2.0), (98, 3, 9.0)):
        metrics.record(issue_day + horizon, "2011-01-01", "avg", "v1", {"mae": value}, (issue_day + horizon,) * 2,
                       source="live", horizon=horizon, issue_day=issue_day)
    seed_live(ws, "avg", {100: 0.7})
    reader = WorkspaceReader(ws.home)
    assert reader.history("mae", "h1")["value"].tolist() == [1.0]
    assert reader.history("mae", "h3")["sim_day"].tolist() == [101]
    assert reader.history("wrmsse", "window")[["sim_day", "value"]].values.tolist() == [[128, 0.7]]
    assert reader.history("mae", "window").empty and reader.history("mae", "h5").empty
    assert set(reader.history("mae", "backtest")["model"]) == set(MODELS)  # the backtest rows, as before
    assert (scope_horizon("window"), scope_horizon("h28")) == (0, 28)
