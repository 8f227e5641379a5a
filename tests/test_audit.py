"""The audit log and the serving record in runs.db: entries, refusals, one transaction, many writers, the schema."""
from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

from m5ops.errors import ParameterError, StoreError  # noqa: E402
from m5ops.stores.audit import AuditEntry, AuditLog  # noqa: E402
from m5ops.stores.metrics import MetricStore  # noqa: E402
from m5ops.stores.rundb import MIGRATIONS, SCHEMA_VERSION  # noqa: E402
from m5ops.stores.serving import ServingSettings, ServingStore  # noqa: E402
from m5ops.stores.sqlite import Database  # noqa: E402


def entry(**changes) -> AuditEntry:
    values = dict(sim_day=120, actor="cli", action="promoted", model="m", version="v2", reason="because",
                  evidence={"score": 0.5})
    return AuditEntry(**{**values, **changes})


def test_entries_come_back_newest_first_with_their_evidence(tmp_path):
    log = AuditLog(tmp_path / "runs.db")
    first = log.record(entry(model="a", evidence={"np": np.float32(0.25), "nan": math.nan, "days": np.arange(3)}))
    log.record(entry(model="b", action="rolled_back"))
    assert first.id == 1 and first.at and first.evidence == {"np": 0.25, "nan": None, "days": [0, 1, 2]}
    assert [e.model for e in log.entries()] == ["b", "a"]
    assert log.entries(model="a")[0].evidence == first.evidence
    assert [e.model for e in log.entries(actions=("promoted",))] == ["a"]
    assert log.last().model == "b" and log.entries(limit=1)[0].model == "b" and log.fingerprint() == 2


@pytest.mark.parametrize("changes, words", [
    ({"actor": "someone"}, "audit actor 'someone' is not one of schedule, rule, cli, dashboard"),
    ({"action": "tweaked"}, "audit action 'tweaked'"),
    ({"reason": "  "}, "needs a reason"),
])
def test_an_entry_that_could_not_be_explained_later_is_refused(tmp_path, changes, words):
    with pytest.raises(StoreError, match=words):
        AuditLog(tmp_path / "runs.db").record(entry(**changes))
    assert AuditLog(tmp_path / "runs.db").entries() == []


def test_a_change_of_production_and_its_entry_commit_together_or_not_at_all(tmp_path):
    store = ServingStore(tmp_path / "runs.db")
    stored = store.change_production("m", "v2", entry())
    assert store.latest().model == "m" and store.latest().at == stored.at and AuditLog(tmp_path / "runs.db").last() == stored
    with pytest.raises(StoreError, match="evidence of an audit entry cannot be stored"):  # the entry fails after the row's INSERT
        store.change_production("n", "v1", entry(model="n", evidence={"x": object()}))
    assert store.latest().model == "m" and [e.model for e in AuditLog(tmp_path / "runs.db").entries()] == ["m"]


def _write_entries(args) -> int:
    path, writer = args
    log = AuditLog(path)
    for i in range(20):
        log.record(entry(model=f"w{writer}", version=f"v{i + 1}"))
    return writer


def test_many_processes_writing_at_once_lose_no_entry(tmp_path):
    path = str(tmp_path / "runs.db")
    AuditLog(path)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        assert sorted(pool.map(_write_entries, [(path, w) for w in range(4)])) == [0, 1, 2, 3]
    entries = AuditLog(path).entries()
    assert len(entries) == 80 and len({e.id for e in entries}) == 80
    for writer in range(4):  # each writer's entries in the order it wrote them
        assert [e.version for e in reversed(AuditLog(path).entries(model=f"w{writer}"))] == [f"v{i}" for i in range(1, 21)]


def test_a_schema_4_runs_db_gains_the_serving_tables_and_keeps_its_metrics(tmp_path):
    path = tmp_path / "runs.db"
    Database(path, MIGRATIONS[:4])  # as the previous m5ops left it (alerts, no serving)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO metrics (sim_day, sim_date, model, version, metric, value) VALUES"
                     " (100, '2011-05-08', 'm', 'v1', 'wrmsse', 0.7)")
    AuditLog(path).record(entry())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5  # later steps may follow
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"production", "audit", "settings", "metrics", "runs"} <= tables
    assert MetricStore(path).history_of("wrmsse")["value"].tolist() == [0.7]


def test_settings_default_then_stored_with_a_model_override(tmp_path):
    store = ServingStore(tmp_path / "runs.db")
    assert store.settings() == ServingSettings() and store.settings().gate_for("m") == 0.10
    policy = store.set({"gate_tolerance": "15%", "promotion": "manual", "keep_versions": "3"})
    assert (policy.gate_tolerance, policy.promotion, policy.keep_versions) == (0.15, "manual", 3)
    assert store.set({"gate_tolerance": 0.3}, model="m").gate_for("m") == 0.3
    assert store.settings().gate_for("other") == 0.15
    store.clear_model("m")
    assert store.settings().gate_overrides == {}
    assert store.set({"promotion": None}).promotion == "auto"  # cleared: the default again
    with pytest.raises(ParameterError, match="settable: gate_tolerance$"):
        store.set({"keep_versions": 2}, model="m")
    with pytest.raises(ParameterError, match="there is no setting 'colour'"):
        store.set({"colour": "red"})


@pytest.mark.slow
def test_history_prints_every_kind_of_change_with_actor_and_reason(tmp_path):
    home = B.make_workspace(tmp_path / "ws", {"naive": "seasonal_naive", "avg": "moving_average"}, items=1, days=176)
    assert "no serving changes yet" in B.m5ops(home, "history").stdout
    B.m5ops(home, "train", "naive")
    B.m5ops(home, "train", "naive")
    B.m5ops(home, "train", "avg")
    B.m5ops(home, "promote", "naive")
    B.m5ops(home, "rollback", "naive")
    B.m5ops(home, "delete", "naive")
    history = json.loads(B.m5ops(home, "history", "--json").stdout)
    assert [(e["action"], e["model"], e["version"], e["actor"]) for e in history] == [
        ("handed_over", "avg", "v1", "cli"), ("rolled_back", "naive", "v1", "cli"), ("promoted", "naive", "v2", "cli"),
        ("accepted", "avg", "v1", "cli"), ("accepted", "naive", "v2", "cli"), ("accepted", "naive", "v1", "cli")]
    assert all(e["at"] and e["sim_day"] == 120 and e["reason"] for e in history)
    assert history[4]["evidence"]["incumbent_version"] == "v1" and history[4]["evidence"]["candidate"] > 0
    text = B.m5ops(home, "history", "--limit", "2").stdout.splitlines()
    assert len(text) == 3 and "handed_over" in text[1] and "naive was deleted while in production" in text[1]
