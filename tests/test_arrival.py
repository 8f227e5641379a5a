"""Daily arrival: held-back real days replayed exactly, then simulated days that follow from the data."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from m5ops.pipeline.arrival import arrive_next_day
from m5ops.stores.holdback import Holdback
from m5ops.data.schema import day_label
from m5ops.data.simulate import simulate_next_day
from m5ops.data.store import DayStore
from m5ops.data.synthetic import generate
from m5ops.errors import WorkspaceError
from m5ops.stores.layout import Workspace
from m5ops.pipeline.workspace_init import InitOptions, init_workspace


def _raw_sales(m5_dir, ids, day):
    """Sales of some series on one day, read straight from the real file."""
    with gzip.open(m5_dir / "sales_train_evaluation.csv.gz", "rt") as fh:
        raw = pd.read_csv(fh, usecols=["id", day_label(day)]).set_index("id")
    return raw.loc[ids, day_label(day)].to_numpy()


def test_replayed_days_equal_the_real_files_exactly(real_workspace, m5_dir):
    workspace = Workspace(real_workspace)
    store = DayStore(workspace.data_dir)
    ids = store.series()["id"].astype(str).to_list()
    first_held = store.last_day() + 1
    for offset in range(3):
        arrival = arrive_next_day(workspace)
        assert arrival.source == "replay" and arrival.day == first_held + offset
        np.testing.assert_array_equal(arrival.sales, _raw_sales(m5_dir, ids, arrival.day))
        stored, _ = store.read_matrix(arrival.day, arrival.day)
        np.testing.assert_array_equal(stored[:, 0], arrival.sales)
    assert Holdback(workspace.holdback_path).remaining_after(store.last_day()) == 53


def test_held_back_prices_are_the_loaded_prices(real_workspace, m5_dir):
    from m5ops.data.m5files import load_m5

    workspace = Workspace(real_workspace)
    arrival = arrive_next_day(workspace)
    real = load_m5(m5_dir, stores=["CA_1", "TX_1"])
    np.testing.assert_array_equal(arrival.prices, real.prices[:, arrival.day - real.first_day])


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, m5_dir):
    """A real-slice workspace with nothing held back, then 30 simulated days (past the real calendar's end)."""
    home = tmp_path_factory.mktemp("sim") / "ws"
    init_workspace(home, InitOptions(source="m5", m5_dir=str(m5_dir), subset={"stores": ["CA_1", "TX_1"]},
                                     start_day=1941, days=500, progress=False, seed=3))
    workspace = Workspace(home)
    arrivals = [arrive_next_day(workspace) for _ in range(30)]
    return workspace, arrivals


def test_simulated_days_continue_the_calendar_and_the_store(simulated):
    workspace, arrivals = simulated
    assert [a.day for a in arrivals] == list(range(1942, 1972))
    assert {a.source for a in arrivals} == {"simulated"}
    assert DayStore(workspace.data_dir).last_day() == 1971


def test_simulated_sales_are_plausible_against_the_real_history(simulated):
    workspace, arrivals = simulated
    store = DayStore(workspace.data_dir)
    real, _ = store.read_matrix(1941 - 55, 1941)
    simulated_sales = np.stack([a.sales for a in arrivals], axis=1)
    real_mean, sim_mean = real.sum(axis=0).mean(), simulated_sales.sum(axis=0).mean()
    assert 0.7 < sim_mean / real_mean < 1.3, (sim_mean, real_mean)
    real_zeros, sim_zeros = (real == 0).mean(), (simulated_sales == 0).mean()
    assert abs(real_zeros - sim_zeros) < 0.1, (real_zeros, sim_zeros)
    per_series = np.corrcoef(real.mean(axis=1), simulated_sales.mean(axis=1))[0, 1]
    assert per_series > 0.8, "each series keeps its own level"


def test_simulated_prices_change_only_on_new_weeks_and_come_from_the_items_history(simulated):
    workspace, arrivals = simulated
    store = DayStore(workspace.data_dir)
    _, history = store.read_matrix(1941 - 363, 1941)
    from m5ops.data.arrival import calendar_through

    calendar = calendar_through(store, 1971)
    previous = history[:, -1]
    for arrival in arrivals:
        changed = ~np.isclose(arrival.prices, previous, equal_nan=True)
        if calendar.loc[arrival.day, "wday"] != 1:
            assert not changed.any(), f"{day_label(arrival.day)} is mid-week"
        for i in np.flatnonzero(changed):
            assert np.isclose(history[i], arrival.prices[i]).any()
        previous = arrival.prices


def test_simulation_is_deterministic_given_seed_and_day(simulated, tmp_path, m5_dir):
    workspace, arrivals = simulated
    home = tmp_path / "again"
    init_workspace(home, InitOptions(source="m5", m5_dir=str(m5_dir), subset={"stores": ["CA_1", "TX_1"]},
                                     start_day=1941, days=500, progress=False, seed=3))
    again = [arrive_next_day(Workspace(home)) for _ in range(2)]
    for a, b in zip(arrivals, again):
        np.testing.assert_array_equal(a.sales, b.sales)
        np.testing.assert_array_equal(a.prices, b.prices)
    other = arrive_next_day(Workspace(home), seed=99)
    assert not np.array_equal(other.sales, arrivals[2].sales)


def test_init_refuses_an_existing_workspace_and_leaves_it_unchanged(real_workspace, m5_dir):
    before = sorted(p.name for p in (real_workspace / "data" / "days").iterdir())
    with pytest.raises(WorkspaceError, match="--force"):
        init_workspace(real_workspace, InitOptions(source="m5", m5_dir=str(m5_dir), progress=False))
    assert sorted(p.name for p in (real_workspace / "data" / "days").iterdir()) == before


@pytest.mark.parametrize("start_day, words", [(50, "must lie in"), (5000, "must lie in")])
def test_init_with_a_bad_start_day_creates_nothing(tmp_path, m5_dir, start_day, words):
    home = tmp_path / "ws"
    with pytest.raises(WorkspaceError, match=words):
        init_workspace(home, InitOptions(source="m5", m5_dir=str(m5_dir), start_day=start_day, progress=False))
    assert not home.exists() and not list(tmp_path.iterdir())


def test_a_simulated_day_applies_snap_only_to_the_series_of_states_with_snap_that_day():
    data = generate(1, n_days=400)
    calendar = data.calendar.set_index(data.calendar["day"].astype(int), drop=False)
    history = calendar.loc[data.last_day - 363:data.last_day]
    later = calendar.loc[data.last_day + 1:]
    # a day when CA has SNAP and TX does not (the rules put them on different days of the month)
    day = later[(later["snap_CA"] == 1) & (later["snap_TX"] == 0)].iloc[0]
    result = simulate_next_day(data.sales[:, -364:], data.prices[:, -364:], history, day, data.series, seed=3)
    snap = result.factors["snap"].to_numpy()
    state = data.series["state_id"].astype(str).to_numpy()
    assert (snap[state == "TX"] == 1.0).all()
    assert (snap[state == "CA"] != 1.0).mean() > 0.9  # CA's own SNAP uplift, measured in its history
    no_snap = day.copy()
    no_snap["snap_CA"] = 0
    calm = simulate_next_day(data.sales[:, -364:], data.prices[:, -364:], history, no_snap, data.series, seed=3)
    assert (calm.factors["snap"].to_numpy() == 1.0).all()


def test_an_arrival_whose_features_fail_leaves_the_store_exactly_as_before(real_workspace, monkeypatch):
    from m5ops.data.feature_store import FeatureStore

    workspace = Workspace(real_workspace)
    store, features = DayStore(workspace.data_dir), FeatureStore(workspace.features_dir)
    days, built = store.stored_days(), features.stored_days()

    def broken(self, store, day, calendar):
        self.write_day(self.read(day - 1, day - 1, store.series()).assign(day=day))  # half the work done
        raise OSError("disk full while writing the features")
    monkeypatch.setattr(FeatureStore, "build_day", broken)
    with pytest.raises(OSError, match="disk full"):
        arrive_next_day(workspace)
    assert store.stored_days() == days and features.stored_days() == built
    monkeypatch.undo()
    assert arrive_next_day(workspace).day == days[-1] + 1  # the same day arrives whole next time
