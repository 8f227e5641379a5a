"""Runner benchmarks: how fast a queued request starts, what Papermill and kernels cost per tick, the demo tick.

    python bench/bench_runner.py                      # both benchmarks (making the tick's source: minutes)
    python bench/bench_runner.py latency --requests 20
    python bench/bench_runner.py tick --source /path/to/default/workspace   # copied, never changed
    python bench/bench_runner.py demo --source ... --demo-ticks 4 --day-seconds 20
    python bench/bench_runner.py --quick              # 5 requests; one tick on a small workspace

``latency``: a real runner process (wall-clock mode, next tick hours away) on a small
workspace; requests (an evaluation of one model) are queued one by one, at random moments of
the runner's poll cycle, each after the previous one finished. The figure is ``started_at -
created_at`` in runs.db: from the queue to the claim that starts it. Target: median <= 1.5 s.

``tick``: the same ticks on three copies of one default-size workspace (``m5ops init``: 210
series, the four default models trained): through the runner's code path (``Work.tick``: a
recorded run per task, a forked child, Papermill) on **warm kernels** (the runner's pool,
full again before each tick as in steady state), the same on **fresh kernels** (no pool: what
it was before), and as the **task functions called directly** in this process (``TICK_STEPS``
in order, then the trainings due). Papermill and the task modules are imported once, before
any timing, as in the long-lived runner; the runner path runs at niceness 0 here, like the
direct one. The fixed cost per notebook is measured on its own: a notebook that only imports
``m5ops`` (what a task notebook does before its task), on a fresh kernel and on a warm one; and
for the tick's real task notebooks, as each run's time outside its cells (run record minus
the cells' durations in the executed notebook). Targets: fixed cost per task notebook on a warm
kernel <= 0.3 s; tick ratio (warm / direct) <= 1.3, printed against the task functions alone
and against the task functions with the tables and charts their notebooks show.

``demo``: a real runner process in demo mode (``--day-seconds 20``, its default niceness 10 and
lanes) on a copy of the same workspace; each scheduled tick's time, from its arrival's start to
the end of its issue of forecasts, from runs.db. Target: median <= 3 s.

Making the source trains LightGBM with default parameters, which takes minutes: pass
``--source`` to reuse one (it is copied, never changed).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
sys.path.insert(0, str(REPO / "bench"))

from common import print_table, timed, verdict  # noqa: E402

from m5ops.orchestration import executor  # noqa: E402  (imports papermill once, here)
from m5ops.orchestration.runner import Runner, RunnerSettings  # noqa: E402
from m5ops.stores.runner_state import RunnerState  # noqa: E402
from m5ops.stores.runs import RunStore  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.pipeline.workspace_init import InitOptions, init_workspace  # noqa: E402


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


# -- request-to-start latency ---------------------------------------------------------------------
def bench_latency(requests: int, scratch: Path) -> dict:
    """Median (and spread) of queue-to-start over ``requests`` requests to an idle runner."""
    from m5ops.pipeline import lifecycle as management
    from m5ops.pipeline.modeling import WorkspaceData, train_version
    from m5ops.stores.registry import Registry, empty_registry

    home = scratch / "latency"
    init_workspace(home, InitOptions(items=1, days=200, subset={"stores": ["CA_1"]}, progress=False))
    Registry(home / "registry.json").path.write_text(json.dumps(empty_registry()))
    workspace = Workspace(home)
    management.create_model(workspace, "naive", "seasonal_naive")
    train_version(WorkspaceData.open(home), "naive")
    at = (datetime.now() - timedelta(hours=1)).strftime("%H:%M")
    log = open(scratch / "latency-runner.log", "wb")
    runner = subprocess.Popen([sys.executable, str(REPO / "runner" / "run_runner.py"), "--home", str(home),
                               "--at", at], stdout=log, stderr=subprocess.STDOUT)
    store = RunStore(workspace.runs_path)
    try:
        _wait(lambda: RunnerState(workspace.runs_path).heartbeat(), 60, "the runner's first heartbeat")
        latencies = []
        for i in range(requests):
            time.sleep(random.uniform(0.0, 0.5))  # land anywhere in the runner's poll cycle
            run_id = store.enqueue("evaluate", params={"models": ["naive"]})
            run = _wait(lambda: store.get(run_id)["finished_at"] and store.get(run_id), 120, f"request {i}")
            latencies.append(seconds_between(run["created_at"], run["started_at"]))
            print(f"  request {i + 1:2d}: started after {latencies[-1]:.3f} s ({run['status']})", flush=True)
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(60)
        log.close()
    return {"requests": requests, "median_s": statistics.median(latencies),
            "p90_s": statistics.quantiles(latencies, n=10, method="inclusive")[-1], "max_s": max(latencies),
            "min_s": min(latencies)}


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")


# -- one tick: runner + Papermill vs direct calls ---------------------------------------------------
def _probe_notebook(scratch: Path, name: str, source: str) -> str:
    """A two-cell task notebook (parameters, ``source``) registered with the executor; its task name."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"},
                                            "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("home = ''\nrun_id = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(source)]
    path = scratch / f"{name}.ipynb"
    nbformat.write(nb, path)
    executor.register(executor.TaskSpec(f"bench_{name}", str(path), {"home": (str,), "run_id": (str,)}))
    return f"bench_{name}"


IMPORTS = "from m5ops.pipeline import figures, tasks"  # what every task notebook runs before its task


def fixed_costs(scratch: Path, repeats: int = 3) -> dict:
    """Papermill's import in a fresh interpreter; per notebook, fresh kernel against warm kernel.

    ``fresh_*``: no pool, each run starts its kernel (as before). ``warm_*``: runs take a kernel
    from a full pool (``executor.warm_kernels``): the fixed cost a task notebook pays over calling
    its function, the notebook being the imports cell alone. ``warm_refill_s``: one spare's start
    to ready (kernel start + the preloaded imports), paid off the runs' path.
    """
    code = "import time; t = time.perf_counter(); import papermill; print(time.perf_counter() - t)"
    imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(repeats)]
    out = {"papermill_import_s": statistics.median(imports)}
    tasks_ = {"empty": _probe_notebook(scratch, "empty", "pass"), "imports": _probe_notebook(scratch, "imports", IMPORTS)}
    for what, task in tasks_.items():
        out[f"fresh_{what}_s"] = statistics.median(
            executor.execute(task, {"home": "", "run_id": "b"}, scratch / f"out-fresh-{what}.ipynb").duration_s
            for _ in range(repeats))
    with executor.warm_kernels(2) as pool:
        for what, task in tasks_.items():
            times = []
            for _ in range(repeats):
                pool.wait_full(300)
                times.append(executor.execute(task, {"home": "", "run_id": "b"},
                                              scratch / f"out-warm-{what}.ipynb").duration_s)
            out[f"warm_{what}_s"] = statistics.median(times)
        pool.wait_full(300)
        out["warm_refill_s"] = statistics.median(pool.ready_seconds())
    return out


def runner_tick(home: Path, pool=None) -> dict:
    """One tick through the runner's code path; per-run durations from the run records.

    With ``pool`` (the runner's warm kernels), the tick starts once the pool is full, as a
    runner's next tick does in steady state; ``refill_s`` is how long filling it took (a runner
    has a whole simulated day for it: 20 s in the demo).
    """
    refill = 0.0
    if pool is not None:
        refill, _ = timed(lambda: pool.wait_full(600))
    runner = Runner(Workspace(home), RunnerSettings(retries=0, niceness=0), serving=False)
    started = time.perf_counter()
    runs = runner.work.tick("manual")
    total = time.perf_counter() - started
    bad = [r["id"] for r in runs if r["status"] != "succeeded"]
    if bad:
        raise RuntimeError(f"runner tick had failed runs {bad}; see {home}/logs")
    label = lambda r: r["task"] + (f"-{r['model']}" if r["model"] else "")  # noqa: E731
    steps = {label(r): seconds_between(r["started_at"], r["finished_at"]) for r in runs}
    outside = {label(r): steps[label(r)] - _cells_seconds(Path(r["output"])) for r in runs}
    return {"total_s": total, "notebooks": len(runs), "steps": steps, "outside_cells": outside, "refill_s": refill}


def _cells_seconds(notebook: Path) -> float:
    """The sum of an executed notebook's cell durations (Papermill's metadata): its run's time in its cells."""
    cells = json.loads(notebook.read_text())["cells"]
    return sum(cell["metadata"].get("papermill", {}).get("duration") or 0.0 for cell in cells)


def direct_tick(home: Path) -> dict:
    """The same tick as plain calls in this process: ``TICK_STEPS`` in order, then the trainings due.

    Apart, and not in the total: the tables and charts the notebooks show after each call,
    formatted as IPython formats a cell's value (PNG, HTML), to tell notebook work from fixed cost.
    """
    from types import SimpleNamespace

    from m5ops.data.store import DayStore
    from m5ops.orchestration.ticks import TICK_STEPS
    from m5ops.pipeline import figures, tasks
    from m5ops.pipeline.triggers import due_trainings

    home_s = str(home)
    work = SimpleNamespace(workspace=Workspace(home))  # what the in-process steps read
    shows = {"simulate_day": lambda a: [figures.arrival_table(a), figures.arrival_factors(a),
                                        figures.plot_recent_totals(home_s, a), figures.split_table(home_s)],
             "evaluate": lambda _: [figures.drift_table(home_s),
                                    *(figures.plot_metric_history(home_s, m) for m in ("wrmsse", "mae"))],
             "issue_forecast": lambda _: _issue_shows(figures, home_s),
             "train": lambda t: [figures.version_table(t), figures.plot_importance(t), figures.plot_fit(home_s, t)]}
    steps, charts, total = {}, {}, 0.0

    def step(label: str, task: str | None, call) -> None:
        nonlocal total
        seconds, result = timed(call)
        steps[label], total = seconds, total + seconds
        if task:
            charts[label] = timed(lambda: [_render(obj) for obj in shows[task](result)])[0]

    for tick_step in TICK_STEPS:
        if tick_step.task:
            step(tick_step.task, tick_step.task, lambda t=tick_step.task: getattr(tasks, t)(home_s, "direct"))
        else:
            step(tick_step.name, None, lambda c=tick_step.call: c(work))
    day = DayStore(home / "data").last_day()
    for due in due_trainings(Workspace(home), day):
        step(f"train-{due.model}", "train", lambda d=due: tasks.train(home_s, "direct", d.model, reason=d.reason,
                                                                      day=day))
    return {"total_s": total, "steps": steps, "charts": charts}


def _issue_shows(figures, home_s: str) -> list:
    """What the issue notebook shows: today's issues as a table, a chart and daily totals."""
    issues = figures.todays_issues(home_s)
    return [figures.issue_table(issues), figures.plot_issue(home_s, issues), figures.issue_daily_totals(issues)]


def _render(obj) -> None:
    """Format the object as IPython does for a cell's value: a chart's PNG, a table's HTML and text."""
    from IPython.core.formatters import DisplayFormatter

    DisplayFormatter().format(obj)


def make_source(home: Path, quick: bool) -> Path:
    """A default-size workspace with its default models trained, directly (quick: 70 series, small models)."""
    from m5ops.pipeline import tasks
    from m5ops.stores.registry import Registry

    print(f"  making a {'small' if quick else 'default-size'} workspace and training its models ...", flush=True)
    init_workspace(home, InitOptions(items=1, days=400, progress=False) if quick else InitOptions(progress=False))
    if quick:  # small models too: one cheap LightGBM and the baselines
        from m5ops.pipeline import lifecycle as management

        workspace = Workspace(home)
        for name in ("lightgbm", "hist-gb"):
            management.delete_model(workspace, name)
        management.create_model(workspace, "lightgbm-small", "lightgbm", {"num_boost_round": 20, "num_leaves": 15})
    for name in Registry(home / "registry.json").models():
        started = time.perf_counter()
        tasks.train(str(home), "bench-setup", name)
        print(f"    trained {name} in {time.perf_counter() - started:.1f} s", flush=True)
    return home


def bench_tick(source: Path | None, scratch: Path, ticks_wanted: int, quick: bool = False) -> dict:
    """``ticks`` ticks three ways on copies of one workspace (warm kernels, fresh kernels, direct), and the fixed costs."""
    import lightgbm  # noqa: F401  (the direct path's imports stay out of its timing, like papermill's)
    import sklearn.ensemble  # noqa: F401
    from m5ops.orchestration.runner import warm_spares
    from m5ops.pipeline import figures, tasks  # noqa: F401

    source = source or make_source(scratch / "source", quick)
    ways = ("warm", "fresh", "direct")
    for name in ways:
        shutil.copytree(source, scratch / name, ignore=shutil.ignore_patterns("runner.lock", "logs", "outputs"))
    costs = fixed_costs(scratch)
    print_table([{k: round(v, 3) for k, v in costs.items()}], title="fixed costs (medians, seconds)")
    ticks = []
    for i in range(1, ticks_wanted + 1):
        order = ways[i % 3:] + ways[:i % 3]  # rotate who goes first: none always meets a warmer cache
        done = {}
        for way in order:
            if way == "warm":  # a runner's pool, full at the tick's start (the runner had the day to refill it)
                with executor.warm_kernels(warm_spares(2)) as pool:
                    done[way] = runner_tick(scratch / way, pool)
            else:  # no pool in this process: each run starts its kernel
                done[way] = direct_tick(scratch / way) if way == "direct" else runner_tick(scratch / way)
        warm, fresh, direct = done["warm"], done["fresh"], done["direct"]
        charts = sum(direct["charts"].values())
        ticks.append({"tick": i, "warm_s": warm["total_s"], "fresh_s": fresh["total_s"], "direct_s": direct["total_s"],
                      "charts_s": charts, "notebooks": warm["notebooks"],
                      "ratio_warm": warm["total_s"] / direct["total_s"], "ratio_fresh": fresh["total_s"] / direct["total_s"],
                      "ratio_warm_with_charts": warm["total_s"] / (direct["total_s"] + charts),
                      "outside_cells_s": statistics.median(warm["outside_cells"].values()),
                      "extra_per_notebook_warm_s": (warm["total_s"] - direct["total_s"]) / warm["notebooks"],
                      "extra_per_notebook_fresh_s": (fresh["total_s"] - direct["total_s"]) / fresh["notebooks"],
                      "refill_s": warm["refill_s"], "warm_steps": warm["steps"], "direct_steps": direct["steps"]})
        print_table([{"step": step, "warm_s": seconds, "warm_outside_cells_s": warm["outside_cells"][step],
                      "fresh_s": fresh["steps"].get(step, float("nan")),
                      "direct_s": direct["steps"].get(step, float("nan")),
                      "its_charts_s": direct["charts"].get(step, float("nan"))}
                     for step, seconds in warm["steps"].items()],
                    title=f"  tick {i}: warm kernels {warm['total_s']:.2f} s, fresh kernels {fresh['total_s']:.2f} s,"
                          f" direct {direct['total_s']:.2f} s (in-process steps: "
                          f"{sum(v for k, v in direct['steps'].items() if k in ('decision', 'alerts')):.2f} s);"
                          f" the pool refilled in {warm['refill_s']:.1f} s before it")
    med = lambda key: statistics.median(t[key] for t in ticks)  # noqa: E731
    summary = {"median_ratio": med("ratio_warm"), "median_ratio_fresh": med("ratio_fresh"),
               "median_ratio_with_charts": med("ratio_warm_with_charts"),
               "median_outside_cells_s": med("outside_cells_s"),
               "median_warm_s": med("warm_s"), "median_fresh_s": med("fresh_s"), "median_direct_s": med("direct_s"),
               "median_extra_per_notebook_s": med("extra_per_notebook_warm_s"),
               "median_extra_per_notebook_fresh_s": med("extra_per_notebook_fresh_s"),
               "median_charts_per_notebook_s": statistics.median(t["charts_s"] / t["notebooks"] for t in ticks),
               "median_refill_s": med("refill_s")}
    print(f"median over {len(ticks)} tick(s): warm kernels {summary['median_warm_s']:.2f} s, fresh kernels"
          f" {summary['median_fresh_s']:.2f} s, direct {summary['median_direct_s']:.2f} s; extra per notebook"
          f" {summary['median_extra_per_notebook_s']:.2f} s warm, {summary['median_extra_per_notebook_fresh_s']:.2f} s"
          f" fresh (of which the notebooks' own charts {summary['median_charts_per_notebook_s']:.2f} s); papermill's"
          f" import ({costs['papermill_import_s']:.2f} s) is paid once per runner", flush=True)
    print(f"{verdict(costs['warm_imports_s'] <= 0.3)} fixed cost per task notebook on a warm kernel"
          f" {costs['warm_imports_s']:.3f} s (target <= 0.3 s; a fresh kernel: {costs['fresh_imports_s']:.2f} s)")
    print(f"     a task notebook's run outside its cells (fork, kernel handover, saves, discard): median"
          f" {summary['median_outside_cells_s']:.3f} s")
    print(f"{verdict(summary['median_ratio'] <= 1.3)} steady-state tick through the runner / the task functions"
          f" called directly {summary['median_ratio']:.2f} (target <= 1.3; fresh kernels: {summary['median_ratio_fresh']:.2f})")
    print(f"{verdict(summary['median_ratio_with_charts'] <= 1.3)} steady-state tick through the runner / the task"
          f" functions and the tables and charts their notebooks show, called directly"
          f" {summary['median_ratio_with_charts']:.2f} (target <= 1.3)")
    return {"fixed_costs": costs, "ticks": ticks, "summary": summary}


def bench_demo(source: Path | None, scratch: Path, ticks_wanted: int, day_seconds: float, quick: bool = False) -> dict:
    """A real runner in demo mode (``--day-seconds``, its default niceness) on a copy: how long each tick's steps take.

    A tick's time is from its arrival's start to the end of its last step's run (the issue of
    forecasts), read from runs.db; its trainings go on in the training lane after it.
    """
    source = source or make_source(scratch / "source", quick)
    home = scratch / "demo"
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("runner.lock", "logs", "outputs"))
    store = RunStore(Workspace(home).runs_path)
    log = open(scratch / "demo-runner.log", "wb")
    runner = subprocess.Popen([sys.executable, str(REPO / "runner" / "run_runner.py"), "--home", str(home),
                               "--day-seconds", f"{day_seconds:g}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        def ticks_done():
            return [t for t in _demo_ticks(store) if t.get("end")]
        _wait(lambda: len(ticks_done()) >= ticks_wanted, ticks_wanted * day_seconds * 4 + 120, f"{ticks_wanted} ticks")
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(120)
        log.close()
    done = ticks_done()[:ticks_wanted]
    seconds = [seconds_between(t["start"], t["end"]) for t in done]
    for i, (tick, took) in enumerate(zip(done, seconds), 1):
        print(f"  demo tick {i}: {took:.2f} s ({', '.join(f'{k} {v:.2f} s' for k, v in tick['runs'].items())})")
    median = statistics.median(seconds)
    print(f"{verdict(median <= 3.0)} demo tick (runner --day-seconds {day_seconds:g}, embedded default) median"
          f" {median:.2f} s, max {max(seconds):.2f} s over {len(seconds)} ticks (target <= 3 s)")
    return {"ticks": seconds, "median_s": median, "max_s": max(seconds), "day_seconds": day_seconds}


def _demo_ticks(store: RunStore) -> list[dict]:
    """The scheduled ticks in runs.db, oldest first: each arrival starts one, its issue of forecasts ends it."""
    ticks: list[dict] = []
    for run in sorted(store.runs(limit=None), key=lambda r: r["created_at"]):
        if run["trigger"] != "schedule" or run["task"] == "train":
            continue
        if run["task"] == "simulate_day":
            ticks.append({"start": run["started_at"] or run["created_at"], "runs": {}})
        if ticks and run["finished_at"]:
            ticks[-1]["runs"][run["task"]] = seconds_between(run["started_at"], run["finished_at"])
            if run["task"] == "issue_forecast":
                ticks[-1]["end"] = run["finished_at"]
    return ticks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", choices=["latency", "tick", "demo", "all"], default="all")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--source", type=Path, help="a default-size workspace with trained models to copy"
                        " (else one is made, which takes minutes)")
    parser.add_argument("--ticks", type=int, default=4)
    parser.add_argument("--demo-ticks", type=int, default=4, help="ticks of the demo-mode runner to time")
    parser.add_argument("--day-seconds", type=float, default=20.0, help="the demo runner's --day-seconds (demo default)")
    parser.add_argument("--quick", action="store_true", help="5 requests; one tick on a small workspace")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    requests, ticks = (min(args.requests, 5), 1) if args.quick else (args.requests, args.ticks)
    os.environ.pop("M5OPS_RUNNER_TOKEN", None)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        scratch = Path(tmp)
        if args.which in ("latency", "all"):
            print(f"request-to-start latency, {requests} requests to an idle runner:", flush=True)
            results["latency"] = lat = bench_latency(requests, scratch)
            print_table([{k: round(v, 3) if isinstance(v, float) else v for k, v in lat.items()}])
            print(f"{verdict(lat['median_s'] <= 1.5)} median request-to-start {lat['median_s']:.3f} s (target <= 1.5 s)")
        source = args.source
        if source is None and args.which != "latency":
            source = make_source(scratch / "source", args.quick)
        if args.which in ("tick", "all"):
            print("a tick through the runner and Papermill (warm kernels, fresh kernels) against direct calls:",
                  flush=True)
            results["tick"] = bench_tick(source, scratch, ticks, args.quick)
        if args.which in ("demo", "all"):
            print(f"the runner in demo mode (--day-seconds {args.day_seconds:g}):", flush=True)
            results["demo"] = bench_demo(source, scratch, 2 if args.quick else args.demo_ticks, args.day_seconds,
                                         args.quick)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
