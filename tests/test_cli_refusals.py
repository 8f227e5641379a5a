"""Every command and option, mistyped as a new user would: status 2, one line naming the fix, nothing changed.

Run in-process through the console script's own ``main`` (the same code path as the real
process, without a second's start-up per case); tests/test_cli.py covers the real processes.
"""
from __future__ import annotations

import contextlib
import hashlib
import sqlite3

import pytest

from m5ops.cli.main import main
from m5ops.pipeline.workspace_init import InitOptions, init_workspace


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A small synthetic workspace (7 series, 300 days), made once for every case."""
    path = tmp_path_factory.mktemp("refusals") / "ws"
    init_workspace(path, InitOptions(items=1, days=300, subset={"stores": ["CA_1"]}, progress=False))
    return path


def fingerprint(folder):
    """Every file under ``folder`` with its content hash (a database: its rows), so any change shows.

    SQLite may fold its write-ahead log into the file when a reader closes: same rows, other bytes.
    """
    def content(path):
        if path.suffix == ".db":
            with contextlib.closing(sqlite3.connect(path)) as conn:
                return "\n".join(conn.iterdump()).encode()
        return path.read_bytes()
    return {str(p.relative_to(folder)): hashlib.sha256(content(p)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith((".log", "-wal", "-shm"))}


def refuse(home, capsys, *args):
    """Run ``m5ops --home HOME ARGS``; (exit status, stderr lines)."""
    capsys.readouterr()
    try:
        status = main(["--home", str(home), *args])
    except SystemExit as exc:  # argparse's own refusals
        status = exc.code
    return status, capsys.readouterr().err.strip().splitlines()


REFUSALS = [
    # command, arguments, words the one line must hold
    (["init", "--force", "--items", "0"], "--items 0"),
    (["init", "--force", "--items", "-2"], "--items -2"),
    (["init", "--force", "--days", "0"], "--days 0"),
    (["init", "--force", "--test-days", "0"], "--test-days 0"),
    (["init", "--force", "--test-days", "500"], "--test-days 500"),
    (["init", "--force", "--seed", "-1"], "--seed -1"),
    (["init", "--force", "--start-day", "5"], "--start-day 5"),
    (["init", "--force", "--source", "m5"], "--m5-dir"),
    (["init", "--force", "--source", "m5", "--m5-dir", "/nonexistent/m5"], "/nonexistent/m5"),
    (["init", "--force", "--source", "csv"], "invalid choice: 'csv'"),
    (["init", "--force", "--states", "CA"], "not --states"),
    (["init", "--force", "--size", "huge"], "invalid choice: 'huge'"),
    (["init", "--force", "--size", "full", "--items", "2"], "both set the items"),
    (["init", "--force", "--stores", "XX_1"], "unknown store 'XX_1'"),
    (["init", "--force", "--outputs", "/etc/hostname"], "is a file"),
    (["init"], "already exists"),
    (["tick", "--days", "0"], "at least 1"),
    (["tick", "--days", "two"], "invalid int"),
    (["export", "--start-day", "5", "--end-day", "1", "--out", "x.csv"], "not all stored"),
    (["export", "--start-day", "1", "--end-day", "5000", "--out", "x.csv"], "not all stored"),
    (["export", "--start-day", "1", "--end-day", "5", "--out", "/nonexistent/x.csv"], "does not exist"),
    (["export", "--start-day", "1", "--end-day", "5"], "--out"),
    (["create", "Bad Name!", "--kind", "lightgbm"], "[a-z0-9]"),
    (["create", "fresh", "--kind", "prophet"], "unknown model kind 'prophet'"),
    (["create", "fresh", "--kind", "lightgbm", "--param", "num_leaves=-3"], "num_leaves"),
    (["create", "fresh", "--kind", "lightgbm", "--param", "num_boost_round=abc"], "not an integer"),
    (["create", "fresh", "--kind", "lightgbm", "--param", "colour=red"], "colour"),
    (["create", "fresh", "--kind", "lightgbm", "--param", "oops"], "KEY=VALUE"),
    (["create", "lightgbm", "--kind", "lightgbm"], "already exists"),
    (["create", "fresh"], "--kind"),
    (["train", "nosuch"], "no model named 'nosuch'"),
    (["pause", "nosuch"], "no model named 'nosuch'"),
    (["resume", "nosuch"], "no model named 'nosuch'"),
    (["delete", "nosuch"], "no model named 'nosuch'"),
    (["evaluate", "nosuch"], "no model named 'nosuch'"),
    (["runs", "--limit", "-1"], "-1 must be at least 1"),
    (["runs", "--limit", "0"], "0 must be at least 1"),
    (["metrics", "--model", "nosuch"], "no model named 'nosuch'"),
    (["forecast", "--model", "nosuch", "--out", "f.csv"], "no model named 'nosuch'"),
    (["forecast", "--model", "lightgbm", "--out", "f.csv"], "issued no forecast yet"),
    (["forecast", "--model", "lightgbm", "--issued", "5", "--out", "f.csv"], "no forecast of 'lightgbm' was issued"),
    (["forecast", "--out", "f.csv"], "no model serves yet"),
    (["forecast", "--out", "/nonexistent/f.csv"], "does not exist"),
    (["promote", "nosuch"], "nosuch"),
    (["rollback", "lightgbm"], "lightgbm"),
    (["set-retrain", "lightgbm", "hourly"], "on-degradation"),
    (["alerts", "--limit", "0"], "0 must be at least 1"),
    (["runner", "--at", "25:00"], "not a time of day"),
    (["runner", "--day-seconds", "0"], "--day-seconds"),
    (["runner", "--retries", "-1"], "--retries -1"),
    (["runner", "--timeout", "0"], "--timeout"),
    (["runner", "--nice", "30"], "--nice 30"),
    (["dashboard", "--port", "0"], "--port"),
    (["dashboard", "--port", "70000"], "--port"),
    (["dashboard", "--host", "0.0.0.0"], "--token"),
    (["train", "lightgbm", "--force", "--bogus"], "unrecognized arguments: --bogus"),
    (["promote", "nosuch"], "no model named 'nosuch'"),
    (["promote", "lightgbm"], "lightgbm has no version yet, so it cannot serve: train it first"),
    (["promote", "lightgbm", "--version", "v3"], "model 'lightgbm' has no version 'v3'"),
    (["rollback", "nosuch"], "no model named 'nosuch'"),
    (["rollback", "lightgbm"], "lightgbm has no version yet: there is nothing to roll back"),
    (["history", "--limit", "0"], "0 must be at least 1"),
    (["settings", "--gate", "15"], "write 10% or 0.10"),
    (["settings", "--gate", "lots"], "the gate tolerance must be a number such as 0.10 or 10%"),
    (["settings", "--promotion", "sometimes"], "invalid choice: 'sometimes'"),
    (["settings", "--promotion-margin", "150%"], "the promotion margin must lie in 0%..99%"),
    (["settings", "--keep-versions", "0"], "versions kept per model must lie in 1..1000"),
    (["settings", "--model", "nosuch", "--gate", "5%"], "no model named 'nosuch'"),
    (["settings", "--model", "lightgbm", "--promotion", "manual"], "with --model only --gate can be set"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("args, words", REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_a_mistyped_command_is_refused_in_one_line_and_changes_nothing(home, capsys, monkeypatch, tmp_path,
                                                                       args, words):
    monkeypatch.chdir(tmp_path)  # relative --out files would land here
    before = fingerprint(home)
    status, lines = refuse(home, capsys, *args)
    assert status == 2, lines
    assert len(lines) == 1 and words in lines[0], lines
    assert fingerprint(home) == before
    assert not any(tmp_path.iterdir()), "a refused command wrote a file"


def test_a_command_without_a_workspace_says_how_to_make_one(tmp_path, capsys):
    status, lines = refuse(tmp_path / "none", capsys, "status")
    assert status == 2 and len(lines) == 1 and "m5ops --home" in lines[0] and "init" in lines[0]
    assert not (tmp_path / "none").exists()
