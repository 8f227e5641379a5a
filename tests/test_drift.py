"""Drift: the statistics against hand-computed values, a known shift found in a workspace, its alert and trigger, the CLI."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from m5ops.data.arrival import calendar_through
from m5ops.data.feature_store import FeatureStore
from m5ops.data.store import DayStore
from m5ops.evaluation import drift as D
from m5ops.pipeline import lifecycle
from m5ops.pipeline.alerts import refresh_alerts
from m5ops.pipeline.drift import (CURRENT_DAYS, REFERENCE_SAMPLE, REFERENCE_WEEKS, WEEK, SampleReader, drift_columns,
                                  drift_report, record_drift, sample_series, sample_weeks, training_window,
                                  version_drift)
from m5ops.pipeline.modeling import WorkspaceData
from m5ops.pipeline.triggers import due_trainings
from m5ops.pipeline.workspace_init import InitOptions, init_workspace
from m5ops.stores.drift import DriftStore
from m5ops.stores.layout import Workspace
from m5ops.stores.registry import Registry
from m5ops.stores.rundb import SCHEMA_VERSION


# --- the statistics, against values worked out by hand ----------------------------------------------

def test_psi_of_two_bins_is_the_textbook_formula():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert D.psi_from_counts([50, 50], [25, 75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert D.psi_from_counts([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)  # same shares, any sizes


def test_psi_bins_are_reference_quantiles_and_zeros_share_one_bin():
    reference = np.array([0] * 60 + [1] * 20 + [2] * 20, dtype=float)
    # deciles of the reference (linear interpolation): 0 x5, 0.4, 1, 1.2, 2 -> edges 0, 0.4, 1, 1.2, 2
    assert D.quantile_edges(reference).tolist() == pytest.approx([0.0, 0.4, 1.0, 1.2, 2.0])
    current = np.array([0] * 30 + [1] * 30 + [2] * 40, dtype=float)
    # shares of the bins (.., 0], (0.4, 1], (1.2, 2]: reference .6 .2 .2, current .3 .3 .4; the others empty on both
    expected = (0.3 - 0.6) * math.log(0.3 / 0.6) + (0.3 - 0.2) * math.log(0.3 / 0.2) + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert D.psi(reference, current) == pytest.approx(expected)
    assert D.psi(reference, reference.copy()) == pytest.approx(0.0)


def test_psi_floors_an_empty_bin_instead_of_going_infinite():
    reference, current = np.arange(100.0), np.arange(50.0)  # the upper five deciles are empty now
    expected = 5 * (0.2 - 0.1) * math.log(2) + 5 * (D.PSI_FLOOR - 0.1) * math.log(D.PSI_FLOOR / 0.1)
    assert D.psi(reference, current) == pytest.approx(expected)


def test_wasserstein_is_normalised_by_the_reference_std():
    reference = np.array([0.0, 1.0, 2.0, 3.0])  # std sqrt(1.25)
    assert D.wasserstein_normed(reference, reference + 1) == pytest.approx(1 / math.sqrt(1.25))
    assert D.wasserstein_normed(reference * 10, reference * 10 + 10) == pytest.approx(1 / math.sqrt(1.25))  # scale-free
    assert D.wasserstein_normed(np.ones(5), np.ones(5) * 2) is None  # a constant reference: undefined, not inf


def test_jensen_shannon_distance_in_base_two():
    # P = (.5, .5), Q = (1, 0), M = (.75, .25): JSD = (KL(P||M) + KL(Q||M)) / 2 in bits, distance its root
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    assert D.jensen_shannon(["a", "b"] * 50, ["a"] * 100) == pytest.approx(math.sqrt((kl_p + kl_q) / 2))
    assert D.jensen_shannon(["a", "b"], ["c", "d"]) == pytest.approx(1.0)
    assert D.jensen_shannon(["a", "b", "b"], ["b", "a", "b"]) == pytest.approx(0.0)


def test_categorical_psi_has_one_bin_per_level_of_either_side():
    # reference a .5 b .5 c 0 (floored), current a .5 b .25 c .25
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.25 - D.PSI_FLOOR) * math.log(0.25 / D.PSI_FLOOR)
    assert D.psi_categorical(list("ab") * 2, list("aabc")) == pytest.approx(expected)


@pytest.mark.parametrize("psi, band", [(0.0, "stable"), (0.0999, "stable"), (0.1, "moderate"), (0.2499, "moderate"),
                                       (0.25, "significant"), (3.0, "significant"), (None, "-")])
def test_psi_bands(psi, band):
    assert D.band(psi) == band


def test_missing_values_are_left_out_and_an_empty_side_is_undefined():
    drift = D.column_drift("x", [1.0, 2.0, np.nan, 3.0], [np.nan, np.nan])
    assert (drift.n_reference, drift.n_current, drift.psi, drift.wasserstein) == (3, 0, None, None)
    assert D.column_drift("c", ["a", None], ["a"], categorical=True).as_dict()["jensen_shannon"] == 0.0


# --- sampling: fixed, seeded, bounded ---------------------------------------------------------------

def test_samples_are_fixed_by_their_seed_and_bounded():
    assert np.array_equal(sample_series(30_490), sample_series(30_490)) and len(sample_series(30_490)) == 1000
    assert sample_series(50).tolist() == list(range(50))
    weeks = sample_weeks(1, 730)
    assert weeks == sample_weeks(1, 730) and len(weeks) == REFERENCE_WEEKS and weeks == sorted(set(weeks))
    for first, last in weeks:  # whole weeks inside the window, counted back from its end: the weekday mix is kept
        assert last - first + 1 == WEEK and 1 <= first and last <= 730 and (730 - last) % WEEK == 0
    assert sample_weeks(8, 737) != [(a + 7, b + 7) for a, b in weeks]  # another window, another draw
    assert sample_weeks(10, 16) == [(10, 16)] and sample_weeks(1, 56) == [(1, 56)]  # short windows whole


def test_calendar_features_are_left_out_and_baselines_have_only_the_target():
    numeric, categorical = drift_columns("lightgbm")
    assert "lag_28" in numeric and "sell_price" in numeric and "item_id" in categorical
    assert not {"wday", "month", "mday", "event", "snap"} & set(numeric + categorical)
    assert drift_columns("seasonal_naive") == ([], [])


def test_the_training_window_comes_from_the_lineage():
    version = {"cutoff_day": 200, "lineage": {"train_start_day": 50, "data_cutoff_day": 200}}
    assert training_window(version, first_day=1) == (50, 200)
    assert training_window({"cutoff_day": 200}, first_day=10) == (10, 200)  # a record without lineage


# --- a workspace with a known shift ------------------------------------------------------------------

@pytest.fixture(scope="module")
def template(tmp_path_factory):
    home = tmp_path_factory.mktemp("drift") / "ws"
    init_workspace(home, InitOptions(items=3, days=300, subset={"stores": ["CA_1"]}, progress=False))
    return home


@pytest.fixture(scope="module")
def tripled(template, tmp_path_factory):
    """The template's workspace with the sales of its last 28 days tripled (its features rebuilt)."""
    home = shutil.copytree(template, tmp_path_factory.mktemp("tripled") / "ws")
    _multiply_last_days(Workspace(home), 3.0)
    return home


@pytest.fixture
def workspace(template, tmp_path):
    shutil.copytree(template, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def _days_of(workspace, source) -> None:
    """Give ``workspace`` the stored days and features of workspace ``source`` (its registry and runs.db stay)."""
    for folder in (workspace.data_dir, workspace.features_dir):
        shutil.rmtree(folder)
        shutil.copytree(source / folder.relative_to(workspace.home), folder)


def _version(workspace, name, kind, trained_day, retrain="weekly", train_days=150):
    """A current version of a new model ``name`` trained on ``trained_day`` (a record: drift needs no artifact)."""
    Registry(workspace.registry_path).update(lambda data: data["models"].pop(name, None))
    lifecycle.create_model(workspace, name, kind, retrain=retrain)
    # not due by the calendar during a test: only a trigger makes it due
    Registry(workspace.registry_path).update(lambda data: data["models"][name]["schedule"].update(every_days=60))
    cutoff = trained_day - 28
    Registry(workspace.registry_path).add_version(name, {
        "sim_date": "2011-01-01", "sim_day": trained_day, "cutoff_day": cutoff, "artifact": f"models/{name}/v1",
        "lineage": {"train_start_day": cutoff - train_days + 1, "data_cutoff_day": cutoff}})


def _multiply_last_days(workspace, factor: float, days: int = CURRENT_DAYS) -> None:
    """Take the last ``days`` days out of the store, put them back with sales x ``factor``, rebuild their features."""
    store, features = DayStore(workspace.data_dir), FeatureStore(workspace.features_dir)
    last = store.last_day()
    first = last - days + 1
    sales, prices = store.read_matrix(first, last)
    for day in range(last, first - 1, -1):
        features.remove_day(day)
        store.remove_last_day(day)
    calendar = calendar_through(store, last)
    for j, day in enumerate(range(first, last + 1)):
        store.append_day(day, np.round(sales[:, j] * factor).astype(sales.dtype), prices[:, j])
        features.build_day(store, day, calendar)


def _by_column(drift) -> dict:
    return {c.column: c for c in drift.columns}


def test_a_tripled_last_month_is_significant_target_drift_and_leaves_the_features_alone(workspace, tripled):
    today = DayStore(workspace.data_dir).last_day()
    _version(workspace, "lgb", "lightgbm", trained_day=today - 10)
    data = WorkspaceData.open(workspace.home)
    model = Registry(workspace.registry_path).get("lgb")
    before = version_drift(data, "lgb", model, model["versions"][0], SampleReader(data))
    assert before.reference == (today - 38 - 149, today - 38) and before.current == (today - 27, today)
    assert before.target.psi < D.SIGNIFICANT, before.target

    _days_of(workspace, tripled)
    data = WorkspaceData.open(workspace.home)
    after = version_drift(data, "lgb", model, model["versions"][0], SampleReader(data))
    assert after.target.band == "significant" and after.target.psi > before.target.psi + 0.25
    assert after.target.wasserstein > before.target.wasserstein
    # every feature of a current day reads sales at least 28 days old: untouched by the shift
    for column, stat in _by_column(after).items():
        if column != "sales":
            assert stat == _by_column(before)[column], column


def test_the_sample_bounds_the_rows_read_whatever_the_workspace_size(workspace):
    today = DayStore(workspace.data_dir).last_day()
    _version(workspace, "lgb", "lightgbm", trained_day=today - 10)
    data = WorkspaceData.open(workspace.home)
    model = Registry(workspace.registry_path).get("lgb")
    drift = version_drift(data, "lgb", model, model["versions"][0], SampleReader(data, series_size=4))
    assert 0 < drift.target.n_current <= 4 * CURRENT_DAYS and 0 < drift.target.n_reference <= 4 * REFERENCE_WEEKS * WEEK


def test_significant_drift_alerts_makes_an_on_drift_model_due_and_clears_when_it_ends(workspace, template, tripled):
    Registry(workspace.registry_path).update(lambda data: data["models"].clear())  # no untrained defaults
    today = DayStore(workspace.data_dir).last_day()
    _version(workspace, "reactive", "seasonal_naive", today - 10, retrain="on-drift")
    _version(workspace, "calendar", "seasonal_naive", today - 10, retrain="weekly")
    _version(workspace, "fresh", "seasonal_naive", today - 3, retrain="on-drift")  # within its cooldown
    names = ["reactive", "calendar", "fresh"]
    record_drift(WorkspaceData.open(workspace.home), names, "run-before")
    assert refresh_alerts(workspace, ("drift",))[0] == []
    assert due_trainings(workspace, today) == []

    _days_of(workspace, tripled)
    found = {d.model: d for d in record_drift(WorkspaceData.open(workspace.home), names, "run-shifted")}
    raised, _ = refresh_alerts(workspace, ("drift",))
    assert {a["model"] for a in raised} == set(names)
    psi = found["reactive"].target.psi
    alert = next(a for a in raised if a["model"] == "reactive")
    assert alert["message"] == f"on-drift: target PSI {psi:.2f} >= 0.25" and alert["evidence"]["psi"] == round(psi, 4)
    assert refresh_alerts(workspace, ("drift",)) == ([], [])  # raised once while it lasts
    due = due_trainings(workspace, today)
    assert [d.model for d in due] == ["reactive"]  # not the weekly-only one, not the one in its cooldown
    assert due[0].reason == alert["message"] and due[0].evidence["psi"] == round(psi, 4)

    _days_of(workspace, template)  # back as it was: the same day evaluated again replaces its drift
    record_drift(WorkspaceData.open(workspace.home), names, "run-restored")
    _, cleared = refresh_alerts(workspace, ("drift",))
    assert {a["model"] for a in cleared} == set(names) and due_trainings(workspace, today) == []


def test_a_version_replaced_since_its_drift_was_recorded_does_not_alert(workspace, tripled):
    today = DayStore(workspace.data_dir).last_day()
    _version(workspace, "naive", "seasonal_naive", today - 10, retrain="on-drift")
    _days_of(workspace, tripled)
    record_drift(WorkspaceData.open(workspace.home), ["naive"], "run-x")
    assert [a["model"] for a in refresh_alerts(workspace, ("drift",))[0]] == ["naive"]
    Registry(workspace.registry_path).add_version("naive", {"sim_date": "2011-01-01", "sim_day": today,
                                                            "cutoff_day": today - 28, "artifact": "models/naive/v2"})
    assert [a["model"] for a in refresh_alerts(workspace, ("drift",))[1]] == ["naive"]


def test_the_evaluation_records_each_current_versions_drift(workspace):
    from m5ops.pipeline.tasks import evaluate, train

    Registry(workspace.registry_path).update(lambda data: data["models"].clear())
    lifecycle.create_model(workspace, "naive", "seasonal_naive")
    lifecycle.create_model(workspace, "lgb", "lightgbm", params={"num_boost_round": 5, "train_days": 120})
    lifecycle.create_model(workspace, "untrained", "moving_average")
    for name in ("naive", "lgb"):
        train(str(workspace.home), "run-train", name)
    evaluate(str(workspace.home), "run-eval")
    today = DayStore(workspace.data_dir).last_day()
    latest = DriftStore(workspace.runs_path).latest()
    assert set(latest["model"]) == {"naive", "lgb"} and set(latest["sim_day"]) == {today}
    assert set(latest["run_id"]) == {"run-eval"}
    lgb = latest[latest["model"] == "lgb"]
    assert lgb["is_target"].sum() == 1 and {"lag_28", "item_id"} <= set(lgb["column"])
    version = Registry(workspace.registry_path).current("lgb")
    assert (lgb["reference_start"].iloc[0], lgb["reference_end"].iloc[0]) == (
        version["lineage"]["train_start_day"], version["lineage"]["data_cutoff_day"])
    assert set(latest[latest["model"] == "naive"]["column"]) == {"sales"}


def test_a_versions_reference_sample_is_kept_once_and_gives_the_same_figures(workspace, monkeypatch):
    from m5ops.pipeline.tasks import train

    Registry(workspace.registry_path).update(lambda data: data["models"].clear())
    lifecycle.create_model(workspace, "lgb", "lightgbm", params={"num_boost_round": 5, "train_days": 120})
    train(str(workspace.home), "run-train", "lgb")
    version = Registry(workspace.registry_path).current("lgb")
    kept = workspace.home / version["artifact"] / REFERENCE_SAMPLE
    data = WorkspaceData.open(workspace.home)
    model = Registry(workspace.registry_path).get("lgb")

    def figures():
        return [c.as_dict() for c in version_drift(data, "lgb", model, version, SampleReader(data)).columns]

    first = figures()
    assert kept.is_file()
    reads = []
    original = FeatureStore.read
    monkeypatch.setattr(FeatureStore, "read", lambda self, start, end, *a, **k: reads.append((start, end))
                        or original(self, start, end, *a, **k))
    assert figures() == first
    today = data.split.today
    assert reads == [(today - CURRENT_DAYS + 1, today)]  # only the current days: the reference came from the file
    kept.write_bytes(b"not parquet")  # a damaged copy is read again from the day files and rewritten
    reads.clear()
    assert figures() == first and len(reads) == 1 + REFERENCE_WEEKS and kept.stat().st_size > 100


def test_recording_a_day_again_replaces_it_and_the_schema_has_the_drift_table(workspace):
    store = DriftStore(workspace.runs_path)
    assert store.db.version == SCHEMA_VERSION
    rows = [D.column_drift("sales", [1, 2, 3], [1, 2, 4], is_target=True).as_dict(),
            D.column_drift("lag_28", [1, 2, 3], [1, 2, 3]).as_dict()]
    store.record(100, "m", "v1", rows, (1, 50), (73, 100), "r1")
    store.record(100, "m", "v1", rows[:1], (1, 50), (73, 100), "r2")
    latest = store.latest("m")
    assert latest["column"].tolist() == ["sales"] and latest["run_id"].tolist() == ["r2"]
    store.record(101, "m", "v1", rows, (1, 50), (74, 101), "r3")
    assert store.target_history("m")["sim_day"].tolist() == [100, 101]


# --- the command ------------------------------------------------------------------------------------

def _m5ops(home, *args):
    return subprocess.run([sys.executable, "-m", "m5ops.cli", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow  # three CLI processes: 13-25 s on a loaded machine
def test_drift_command_shows_json_text_and_refuses_an_unknown_model(workspace):
    today = DayStore(workspace.data_dir).last_day()
    _version(workspace, "lgb", "lightgbm", today - 10)
    _version(workspace, "naive", "seasonal_naive", today - 10)
    record_drift(WorkspaceData.open(workspace.home), ["lgb", "naive"], "run-1")

    done = _m5ops(workspace.home, "drift", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"lgb", "naive"} and report["lgb"]["current"] == [today - 27, today]
    columns = report["lgb"]["columns"]
    assert columns[0]["column"] == "sales" and columns[0]["target"]
    psis = [c["psi"] for c in columns[1:] if c["psi"] is not None]
    assert psis == sorted(psis, reverse=True)  # the features by PSI, highest first
    assert all(c["band"] == D.band(c["psi"]) for c in columns)
    naive = report["naive"]
    assert naive["target_history"] == [{"sim_day": today, "version": "v1", "psi": naive["columns"][0]["psi"]}]

    one = _m5ops(workspace.home, "drift", "naive")
    assert one.returncode == 0 and one.stdout.startswith("naive v1 on ") and "lgb" not in one.stdout
    assert "sales (target)" in one.stdout and "target PSI over time" in one.stdout

    unknown = _m5ops(workspace.home, "drift", "nope", "--json")
    assert unknown.returncode == 2 and "no model 'nope'" in unknown.stderr and unknown.stdout == ""


def test_drift_report_leaves_deleted_models_out(workspace):
    today = DayStore(workspace.data_dir).last_day()
    _version(workspace, "gone", "seasonal_naive", today - 10)
    record_drift(WorkspaceData.open(workspace.home), ["gone"], "run-1")
    assert "gone" in drift_report(workspace)
    lifecycle.delete_model(workspace, "gone")
    assert "gone" not in drift_report(workspace) and len(DriftStore(workspace.runs_path).latest("gone")) == 1
