"""Helpers for browser tests and benchmarks: Voila, the runner and Debian's chromium, started and stopped.

Used by ``tests/test_dashboard_browser.py`` and ``bench/bench_dashboard.py``. Nothing here
downloads a browser: Playwright drives ``/usr/bin/chromium``, and every request that leaves
127.0.0.1 (Voila's page asks a font CDN for icons) is aborted.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from m5ops.dashboard import server

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = os.environ.get("M5OPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
M5OPS = [sys.executable, "-m", "m5ops.cli"]


def plugin_env() -> dict:
    """This process's environment plus the test model kinds of ``tests/plugins`` (M5OPS_PLUGINS)."""
    plugins = str(Path(__file__).resolve().parent / "plugins")
    return {**os.environ, "M5OPS_PLUGINS": "m5ops_test_kinds",
            "PYTHONPATH": os.pathsep.join(p for p in (plugins, os.environ.get("PYTHONPATH")) if p)}


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when chromium and playwright are present."""
    if not Path(CHROMIUM).is_file():
        return f"chromium not found at {CHROMIUM}: apt-get install -y chromium (or set M5OPS_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install playwright (never 'playwright install')"
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 90.0) -> None:
    """Block until 127.0.0.1:port accepts connections (no GET: that would start a kernel)."""
    if not server.wait_for_port("127.0.0.1", port, process, timeout_s):
        exited = process.poll() is not None
        why = f"exited with {process.returncode}" if exited else f"did not listen in {timeout_s:.0f} s"
        raise RuntimeError(f"process {process.args} {why} on 127.0.0.1:{port}")


def stop_process(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``."""
    server.stop(process, grace_s)


def m5ops(home: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the m5ops CLI on workspace ``home``."""
    done = subprocess.run([*M5OPS, "--home", str(home), *args], capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"m5ops {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


@contextlib.contextmanager
def voila(home: Path, log_path: Path, port: int | None = None, env: dict | None = None) -> Iterator[str]:
    """``m5ops dashboard`` on a free port of 127.0.0.1; yields its URL, stops it afterwards."""
    port = port or free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen([*M5OPS, "--home", str(home), "dashboard", "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}/"
        finally:
            stop_process(process)


@contextlib.contextmanager
def runner(home: Path, log_path: Path, day_seconds: float = 3600.0,
           env: dict | None = None) -> Iterator[subprocess.Popen | None]:
    """``m5ops runner --day-seconds N`` in the background, or None when the runner does not exist yet."""
    try:
        import m5ops.orchestration.runner  # noqa: F401
    except ImportError:
        yield None
        return
    with open(log_path, "w") as log:
        process = subprocess.Popen([*M5OPS, "--home", str(home), "runner", "--day-seconds", str(day_seconds)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            yield process
        finally:
            stop_process(process, grace_s=30.0)


@contextlib.contextmanager
def chromium(headless: bool = True):
    """A Playwright chromium browser (Debian's), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=headless)
        try:
            yield browser
        finally:
            browser.close()


def local_only(route) -> None:
    """Let requests to this machine through; abort every other one (font CDN and the like)."""
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")):
        route.continue_()
    else:
        route.abort()


def open_page(browser, viewport=(1500, 1000)):
    """A new page that only reaches 127.0.0.1."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.route("**/*", local_only)
    return page


def screenshot(page, name: str) -> Path:
    """Save a screenshot of the whole dashboard under test-artifacts/ (git-ignored); returns its path.

    Voila's page scrolls inside a container, so a full-page shot would stop at the viewport: the
    viewport is stretched to the dashboard's height for the shot, then put back.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = page.viewport_size
    height = page.evaluate("() => { const d = document.querySelector('.m5-dashboard');"
                           " return d ? Math.ceil(d.getBoundingClientRect().height) + 120 : 0; }")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height, 8000))})
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def copy_workspace(template: Path, home: Path) -> Path:
    """A private copy of a prepared workspace."""
    shutil.copytree(template, home)
    return home


def make_workspace(home: Path, models: dict[str, str], items: int = 1, days: int = 200) -> Path:
    """A small synthetic workspace whose registry holds exactly ``models`` (name -> kind), untrained."""
    from m5ops.pipeline import lifecycle as management
    from m5ops.stores.registry import Registry
    from m5ops.stores.layout import Workspace
    from m5ops.pipeline.workspace_init import InitOptions, init_workspace

    init_workspace(home, InitOptions(items=items, days=days, progress=False))
    workspace = Workspace(home)
    for name in list(Registry(workspace.registry_path).models()):
        management.delete_model(workspace, name)
    for name, kind in models.items():
        management.create_model(workspace, name, kind)
    return home


def seed_history(home: Path, days: int, every_days: int = 7, versions: bool = True) -> None:
    """Give every model of ``home`` metrics for each of the last ``days`` days, and a version every ``every_days``.

    For benchmarks and views only: versions point at no artifact (``versions=False`` leaves the
    registry alone, so that a real runner can train and evaluate), and runs and metrics are
    written in bulk (one transaction each) instead of by ``days`` evaluations.
    """
    import json
    import sqlite3

    import numpy as np

    from m5ops.data.schema import day_date
    from m5ops.data.store import DayStore
    from m5ops.stores.registry import Registry
    from m5ops.stores.metrics import METRIC_COLUMNS
    from m5ops.stores.runs import RunStore
    from m5ops.stores.layout import Workspace

    workspace = Workspace(home)
    today = DayStore(workspace.data_dir).last_day()
    first = today - days + 1
    registry = Registry(workspace.registry_path)
    names = list(registry.models())
    rng = np.random.default_rng(0)

    def add_versions(data: dict) -> None:
        for name in names:
            model = data["models"][name]
            for k, day in enumerate(range(first, today + 1, every_days), start=1):
                model["versions"].append({"id": f"v{k}", "trained_at": "2026-01-01T00:00:00+00:00",
                                          "sim_date": str(day_date(day).date()), "sim_day": day,
                                          "cutoff_day": day - 28, "artifact": f"models/{name}/v{k}",
                                          "status": "retired", "artifact_kept": False, "metrics": {}})
            model["current_version"] = model["versions"][-1]["id"]
            model["versions"][-1]["status"] = "current"
    if versions:
        registry.update(add_versions)
    RunStore(workspace.runs_path)  # the tables
    metric_rows, run_rows = [], []
    for i, name in enumerate(names):
        level = 0.6 + 0.05 * i
        for day in range(first, today + 1):
            version = f"v{(day - first) // every_days + 1}"
            noise = rng.normal(0, 0.02, 5)
            values = {"mae": 1.2 * level, "wmape": level, "rmse": 2 * level, "tweedie": 3 * level, "wrmsse": level}
            for (metric, value), e in zip(values.items(), noise):
                metric_rows.append((day, str(day_date(day).date()), name, version, metric, float(value + e),
                                    day - 27, day, None))
    for day in range(first, today + 1):
        stamp = f"2026-01-01T00:00:{day % 60:02d}.{day % 1000:03d}+00:00"
        for task, model in [("simulate_day", None), ("evaluate", None),
                            *[("train", n) for n in names if (day - first) % every_days == 0]]:
            run_id = f"seed{day:05d}-{task}-{model or ''}"
            run_rows.append((run_id, task, model, json.dumps({"model": model} if model else {}), "schedule",
                             "succeeded", day, stamp, stamp, stamp, None, None, 1, None))
    with sqlite3.connect(workspace.runs_path) as conn:
        conn.executemany(f"INSERT OR REPLACE INTO metrics ({', '.join(METRIC_COLUMNS[:9])}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         metric_rows)
        conn.executemany('INSERT INTO runs (id, task, model, params, "trigger", status, sim_day, created_at,'
                         ' started_at, finished_at, output, error, attempt, pid) VALUES'
                         ' (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', run_rows)


def x_ticks(page, chart: str) -> list[str]:
    """The labels of the x axis of the bqplot chart matched by the CSS selector ``chart``."""
    return page.evaluate("(c) => [...document.querySelectorAll(c + ' .axis')][0] ? [...[...document"
                         ".querySelectorAll(c + ' .axis')][0].querySelectorAll('.tick text')].map(t => t.textContent)"
                         " : []", chart)


def assert_day_ticks(page, chart: str) -> None:
    """The chart's date axis is ticked by days ("May 28"), one tick a day at most, never by hours ("06 AM")."""
    ticks = [t for t in x_ticks(page, chart) if t]
    assert ticks, f"no date ticks on {chart}"
    assert len(ticks) == len(set(ticks)), (chart, ticks)
    assert not [t for t in ticks if "AM" in t or "PM" in t or ":" in t], (chart, ticks)
    assert all(len(t.split()) == 2 and t.split()[0] in
               "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split() for t in ticks), (chart, ticks)
