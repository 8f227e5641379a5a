"""The day store: atomic appends, no day twice, range reads, survival of SIGKILL mid-append."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from m5ops.data.schema import SERIES_COLUMNS
from m5ops.data.store import DayStore
from m5ops.errors import DataError


def _series(n: int) -> pd.DataFrame:
    items = [f"FOODS_1_{i:03d}" for i in range(1, n + 1)]
    return pd.DataFrame({"id": [f"{i}_CA_1_evaluation" for i in items], "item_id": items, "dept_id": "FOODS_1",
                         "cat_id": "FOODS", "store_id": "CA_1", "state_id": "CA"}).astype("category")


@pytest.fixture
def store(tmp_path) -> DayStore:
    store = DayStore(tmp_path / "data")
    store.create(_series(5), pd.DataFrame({"day": [1, 2], "wday": [1, 2]}))
    return store


def _files(store: DayStore) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.days_dir.iterdir())}


def test_appended_days_read_back_as_matrices(store):
    rng = np.random.default_rng(0)
    sales = rng.poisson(3, size=(5, 4))
    prices = rng.uniform(1, 5, size=(5, 4)).astype(np.float32)
    for j in range(4):
        store.append_day(10 + j, sales[:, j], prices[:, j])
    got_sales, got_prices = store.read_matrix(11, 13)
    np.testing.assert_array_equal(got_sales, sales[:, 1:4])
    np.testing.assert_array_equal(got_prices, prices[:, 1:4])
    assert store.stored_days() == [10, 11, 12, 13]


def test_long_read_carries_ids_dates_and_compact_types(store):
    store.append_day(1914, np.arange(5), np.full(5, 2.5))
    long = store.read_long(1914, 1914)
    assert list(long.columns) == [*SERIES_COLUMNS, "d", "date", "sales", "sell_price"]
    assert long["d"].iloc[0] == "d_1914" and str(long["date"].iloc[0].date()) == "2016-04-25"
    schema = pq.read_schema(store.days_dir / "day=001914.parquet")
    assert str(schema.field("sales").type) == "uint16" and str(schema.field("sell_price").type) == "float"


@pytest.mark.parametrize("day, words", [(3, "next day must be d_2"), (1, "next day must be d_2"),
                                        (5, "next day must be d_2")])
def test_a_day_out_of_order_or_twice_is_refused_and_changes_nothing(store, day, words):
    store.append_day(1, np.ones(5), np.ones(5))
    before = _files(store)
    with pytest.raises(DataError, match=words):
        store.append_day(day, np.ones(5), np.ones(5))
    assert _files(store) == before


@pytest.mark.parametrize("sales, words", [
    (np.array([1, 2, -1, 0, 0]), "whole numbers"),
    (np.array([1, 2, np.nan, 0, 0]), "whole numbers"),
    (np.array([1, 2, 3]), "needs 5 sales"),
    (np.array([1, 2, 70000, 0, 0]), "whole numbers"),
])
def test_bad_day_values_are_refused_and_change_nothing(store, sales, words):
    store.append_day(1, np.ones(5), np.ones(5))
    before = _files(store)
    with pytest.raises(DataError, match=words):
        store.append_day(2, sales, np.ones(len(sales)))
    assert _files(store) == before


def test_reading_days_not_stored_names_the_stored_range(store):
    store.append_day(1, np.ones(5), np.ones(5))
    with pytest.raises(DataError, match=r"store holds d_1\.\.d_1"):
        store.read_matrix(1, 2)


_WRITER = """
import sys, numpy as np, pandas as pd
from m5ops.data.store import DayStore
store = DayStore(sys.argv[1])
n = store.n_series()
day = (store.last_day() or 0) + 1
print("ready", flush=True)  # imports done: the kill lands in the loop of appends, however loaded the machine
while True:
    store.append_day(day, np.full(n, day % 100), np.full(n, 1.5))
    day += 1
"""


def test_store_survives_sigkill_in_the_middle_of_appends(tmp_path):
    store = DayStore(tmp_path / "data")
    n = 200_000  # big enough that a kill often lands inside a write
    store.create(_series(1).sample(n, replace=True).reset_index(drop=True), pd.DataFrame({"day": [1]}))
    rng = np.random.default_rng(1)
    kills = 0
    while kills < 6 or not store.stored_days():
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(store.root)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(0.3 + rng.random() * 0.7)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        kills += 1
        assert kills < 30, "no day was ever stored between the kills"
    days = store.stored_days()
    assert days == list(range(1, days[-1] + 1)), "days are consecutive, none twice"
    for day in days:
        table = pq.read_table(store.days_dir / f"day={day:06d}.parquet")
        assert table.num_rows == n and set(table.column("sales").to_pylist()[:3]) == {day % 100}
    store.clean_temporaries()
    assert not list(store.days_dir.glob(".*.tmp-*"))


def test_a_racing_second_writer_of_the_same_day_is_refused(store, monkeypatch):
    store.append_day(1, np.ones(5), np.ones(5))
    store.append_day(2, np.ones(5), np.ones(5))
    before = _files(store)
    monkeypatch.setattr(store, "last_day", lambda: 1)  # as seen by a writer that listed before day 2 landed
    with pytest.raises(DataError, match="already stored"):
        store.append_day(2, np.zeros(5), np.zeros(5))
    assert _files(store) == before
