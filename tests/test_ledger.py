"""The forecast ledger: issues read back value for value, never twice, cheap reads by target day,
retention, and survival of SIGKILL mid-write."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from m5ops.data.schema import HORIZON
from m5ops.errors import LedgerError
from m5ops.stores.ledger import ForecastLedger, Issue

HOLDBACK = ("holdback",) * 20 + ("carried_forward",) * 8


def issue(model: str, day: int, n: int = 6, version: str = "v1") -> Issue:
    """An issue whose value names its model, day, series and horizon (so a mix-up shows)."""
    code = sum(map(ord, model)) % 7
    values = code + day * 0.001 + np.arange(n)[:, None] * 10 + np.arange(1, HORIZON + 1)[None, :] * 0.01
    return Issue(model, version, day, values.astype(np.float32), HOLDBACK, run_id="r1")


@pytest.fixture
def ledger(tmp_path) -> ForecastLedger:
    return ForecastLedger(tmp_path / "forecasts")


def test_an_issue_reads_back_value_for_value_with_its_price_source(ledger):
    written = issue("lightgbm", 1885)
    path = ledger.write(written)
    assert path == ledger.root / "issue_day=001885" / "lightgbm.parquet"
    back = ledger.read_issue("lightgbm", 1885)
    np.testing.assert_array_equal(back.values, written.values)
    assert back.values.dtype == np.float32 and back.version == "v1" and back.run_id == "r1"
    assert back.price_source == HOLDBACK and back.price_source_counts() == {"holdback": 20, "carried_forward": 8}
    assert list(back.target_days) == list(range(1886, 1914))


def test_latest_issue_and_issue_days_of_each_model(ledger):
    for day in (10, 11, 12):
        ledger.write(issue("a", day))
    ledger.write(issue("b", 11, version="v3"))
    assert ledger.latest("a").issue_day == 12 and ledger.latest("b").version == "v3"
    assert ledger.latest("c") is None
    assert ledger.issue_days() == [10, 11, 12] and ledger.issue_days("b") == [11]
    assert ledger.models_issued(11) == ["a", "b"]


def test_an_issue_is_never_stored_twice(ledger):
    path = ledger.write(issue("a", 5))
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="already issued .* never stored twice"):
        ledger.write(issue("a", 5, version="v2"))
    assert path.read_bytes() == before and not list(path.parent.glob(".*"))


@pytest.mark.parametrize("change, words", [
    (dict(values=np.ones((6, 27), np.float32)), "shape"),
    (dict(values=np.full((6, HORIZON), np.nan, np.float32)), "NaN/inf"),
    (dict(price_source=("guessed",) * HORIZON), "price_source"),
    (dict(price_source=("holdback",) * 3), "price_source"),
    (dict(model="Not A Slug"), "not a slug"),
])
def test_a_malformed_issue_is_refused_and_nothing_is_written(ledger, change, words):
    bad = issue("a", 5)
    for name, value in change.items():
        setattr(bad, name, value)
    with pytest.raises(LedgerError, match=words):
        ledger.write(bad)
    assert ledger.issue_days() == []


def test_a_missing_issue_names_the_issue_days_there_are(ledger):
    ledger.write(issue("a", 7))
    ledger.write(issue("a", 9))
    with pytest.raises(LedgerError, match=r"on d_8; its issues: d_7..d_9 \(2\)"):
        ledger.read_issue("a", 8)


def test_forecasts_of_a_day_come_from_the_28_issue_days_before_it_only(ledger):
    for day in range(1, 61):
        ledger.write(issue("a", day))
        if day % 2:
            ledger.write(issue("b", day, version="v2"))
    for day in (5, 12):  # issues that cannot target day 50: unreadable, so reading them would fail
        for path in ledger.issue_dir(day).iterdir():
            path.write_bytes(b"not parquet")
    frame = ledger.targeting(50)
    assert sorted(frame["issue_day"].unique()) == list(range(22, 50))
    assert (frame["target_day"] == 50).all() and len(frame) == 6 * (28 + 14)
    for (model, issue_day), rows in frame.groupby(["model", "issue_day"], observed=True):
        expected = issue(model, issue_day).values[:, 50 - issue_day - 1]
        np.testing.assert_array_equal(rows.sort_values("series")["value"].to_numpy(), expected)
    assert set(frame.loc[frame["model"] == "b", "version"]) == {"v2"}
    assert ledger.targeting(500).empty


def test_prune_keeps_recent_issues_and_every_issue_of_the_serving_model(ledger):
    for day in range(100, 161):
        ledger.write(issue("serving", day))
        ledger.write(issue("challenger", day))
    removed = ledger.prune(today=160, keep_days=56, keep_models={"serving"})
    assert len(removed) == 5  # challenger issues of days 100..104 (day 104 = 160 - 56)
    assert ledger.issue_days("challenger") == list(range(105, 161))
    assert ledger.issue_days("serving") == list(range(100, 161))
    ledger.prune(today=160, keep_days=56)
    assert ledger.issue_days() == list(range(105, 161)), "folders left empty are removed"
    assert ledger.prune(today=1000, keep_days=None) == [], "None keeps everything"


_WRITER = """
import sys
import numpy as np
from m5ops.data.schema import HORIZON
from m5ops.stores.ledger import ForecastLedger, Issue
ledger = ForecastLedger(sys.argv[1])
n = int(sys.argv[2])
day = max(ledger.issue_days("m") or [0]) + 1
values = np.tile(np.arange(1, HORIZON + 1, dtype=np.float32), (n, 1))
print("ready", flush=True)
while True:
    ledger.write(Issue("m", "v1", day, values + day, ("holdback",) * HORIZON))
    day += 1
"""


def test_ledger_survives_sigkill_in_the_middle_of_writes(ledger):
    n = 200_000  # big enough that a kill often lands inside a write
    rng = np.random.default_rng(3)
    for _ in range(6):
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(ledger.root), str(n)], stdout=subprocess.PIPE)
        assert writer.stdout.readline() == b"ready\n"  # imports done: the kill lands among the writes
        time.sleep(0.2 + rng.random() * 1.0)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    days = ledger.issue_days("m")
    assert days and days == list(range(1, days[-1] + 1)), "whole issues, consecutive, none twice"
    for day in days:
        back = ledger.read_issue("m", day)
        assert back.values.shape == (n, HORIZON) and back.values[-1, -1] == HORIZON + day
    leftovers = [p for day in ledger.issue_days() for p in ledger.issue_dir(day).iterdir() if p.name.startswith(".")]
    assert all(".tmp-" in p.name for p in leftovers), "only the ledger's own temp names"
    assert all(ledger.models_issued(day) == ["m"] for day in days), "a temp file is never taken for an issue"
    assert ledger.clean_temporaries() == len(leftovers)
    assert not [p for day in ledger.issue_days() for p in ledger.issue_dir(day).iterdir() if p.name.startswith(".")]
