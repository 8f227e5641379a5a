"""Runner benchmarks: how fast a queued request starts, and what Papermill costs per tick.

    python bench/bench_runner.py                      # both benchmarks (making the tick's source: minutes)
    python bench/bench_runner.py latency --requests 20
    python bench/bench_runner.py tick --source /path/to/default/workspace   # copied, never changed
    python bench/bench_runner.py --quick              # 5 requests; one tick on a small workspace

``latency``: a real runner process (wall-clock mode, next tick hours away) on a small
workspace; requests (an evaluation of one model) are queued one by one, at random moments of
the runner's poll cycle, each after the previous one finished. The figure is ``started_at -
created_at`` in runs.db: from the queue to the claim that starts it. Target: median <= 1.5 s.

``tick``: the same ticks on two copies of one default-size workspace (``m5ops init``: 210
series, 1,941 days, the four default models trained): once through the runner's code path
(``Work.tick``: a recorded run per task, a forked child, Papermill, a fresh kernel), once as
the task functions called directly in this process. A tick arrives one day, evaluates every
model and trains those that are due (in steady state, none on most days). Papermill and the
task modules are imported once, before any timing, as in the long-lived runner; the fixed
cost left per notebook (kernel start, the kernel's imports) is measured on its own. Making
the source trains LightGBM with default parameters, which takes minutes: pass ``--source``
to reuse one (it is copied, never changed).
"""
from __future__ import annotations

import argparse
import io
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
def fixed_costs(scratch: Path, repeats: int = 3) -> dict:
    """Papermill's import in a fresh interpreter; per notebook: kernel start, and kernel + m5ops imports."""
    import nbformat

    code = "import time; t = time.perf_counter(); import papermill; print(time.perf_counter() - t)"
    imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(repeats)]
    out = {"papermill_import_s": statistics.median(imports)}
    for name, source in (("kernel_start_s", "pass"), ("kernel_start_and_m5ops_imports_s", "from m5ops.pipeline import figures, tasks")):
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                               "display_name": "Python 3"},
                                                "language_info": {"name": "python"}})
        nb.cells = [nbformat.v4.new_code_cell("home = ''\nrun_id = ''", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(source)]
        path = scratch / f"{name}.ipynb"
        nbformat.write(nb, path)
        executor.register(executor.TaskSpec(f"bench_{name}", str(path), {"home": (str,), "run_id": (str,)}))
        times = [executor.execute(f"bench_{name}", {"home": "", "run_id": "b"}, scratch / f"out-{name}.ipynb").duration_s
                 for _ in range(repeats)]
        out[name] = statistics.median(times)
    return out


def runner_tick(home: Path) -> dict:
    """One tick through the runner's code path; per-run durations from the run records."""
    runner = Runner(Workspace(home), RunnerSettings(retries=0), serving=False)
    started = time.perf_counter()
    runs = runner.work.tick("manual")
    total = time.perf_counter() - started
    bad = [r["id"] for r in runs if r["status"] != "succeeded"]
    if bad:
        raise RuntimeError(f"runner tick had failed runs {bad}; see {home}/logs")
    steps = {r["task"] + (f"-{r['model']}" if r["model"] else ""): seconds_between(r["started_at"], r["finished_at"])
             for r in runs}
    return {"total_s": total, "notebooks": len(runs), "steps": steps}


def direct_tick(home: Path) -> dict:
    """The same tick as plain calls of the task functions in this process.

    Apart, and not in the total: the tables and charts the notebooks show after each call,
    rendered to PNG as Jupyter's inline backend does, to tell notebook work from fixed cost.
    """
    from m5ops.pipeline import tasks
    from m5ops.pipeline import figures
    from m5ops.data.store import DayStore
    from m5ops.stores.registry import Registry

    home_s = str(home)
    shows = {"simulate_day": lambda a: [figures.arrival_table(a), figures.arrival_factors(a),
                                        figures.plot_recent_totals(home_s, a), figures.split_table(home_s)],
             "evaluate": lambda _: [figures.plot_metric_history(home_s, m) for m in ("wrmsse", "mae")],
             "train": lambda t: [figures.version_table(t), figures.plot_importance(t), figures.plot_fit(home_s, t)]}
    steps, charts, total = {}, {}, 0.0

    def step(label: str, task: str, call) -> None:
        nonlocal total
        seconds, result = timed(call)
        steps[label], total = seconds, total + seconds
        charts[label] = timed(lambda: [_render(obj) for obj in shows[task](result)])[0]

    step("simulate_day", "simulate_day", lambda: tasks.simulate_day(home_s, "direct"))
    step("evaluate", "evaluate", lambda: tasks.evaluate(home_s, "direct"))
    for name in Registry(home / "registry.json").due_for_training(DayStore(home / "data").last_day()):
        step(f"train-{name}", "train", lambda: tasks.train(home_s, "direct", name))
    return {"total_s": total, "steps": steps, "charts": charts}


def _render(obj) -> None:
    """Render a figure to PNG (as the inline backend does); tables and strings cost nothing more."""
    if hasattr(obj, "savefig"):
        obj.savefig(io.BytesIO(), format="png", bbox_inches="tight")


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
    """``ticks`` ticks each way on copies of one default-size workspace, and the fixed costs."""
    import lightgbm  # noqa: F401  (the direct path's imports stay out of its timing, like papermill's)
    import sklearn.ensemble  # noqa: F401
    from m5ops.pipeline import figures, tasks  # noqa: F401

    source = source or make_source(scratch / "source", quick)
    for name in ("via-runner", "direct"):
        shutil.copytree(source, scratch / name, ignore=shutil.ignore_patterns("runner.lock", "logs", "outputs"))
    costs = fixed_costs(scratch)
    ticks = []
    for i in range(1, ticks_wanted + 1):
        if i % 2:  # alternate which goes first, so that neither always meets a warmer cache
            via, direct = runner_tick(scratch / "via-runner"), direct_tick(scratch / "direct")
        else:
            direct, via = direct_tick(scratch / "direct"), runner_tick(scratch / "via-runner")
        extra = (via["total_s"] - direct["total_s"]) / via["notebooks"]
        ticks.append({"tick": i, "runner_s": via["total_s"], "direct_s": direct["total_s"],
                      "charts_s": sum(direct["charts"].values()),
                      "ratio": via["total_s"] / direct["total_s"], "notebooks": via["notebooks"],
                      "extra_per_notebook_s": extra, "runner_steps": via["steps"], "direct_steps": direct["steps"]})
        print_table([{"step": step, "notebook_s": seconds, "direct_s": direct["steps"].get(step, float("nan")),
                      "its_charts_s": direct["charts"].get(step, float("nan"))} for step, seconds in via["steps"].items()],
                    title=f"  tick {i}: runner {via['total_s']:.1f} s, direct {direct['total_s']:.1f} s,"
                          f" ratio {ticks[-1]['ratio']:.2f}")
    summary = {"median_ratio": statistics.median(t["ratio"] for t in ticks),
               "median_runner_s": statistics.median(t["runner_s"] for t in ticks),
               "median_direct_s": statistics.median(t["direct_s"] for t in ticks),
               "median_extra_per_notebook_s": statistics.median(t["extra_per_notebook_s"] for t in ticks),
               "median_charts_per_notebook_s": statistics.median(t["charts_s"] / t["notebooks"] for t in ticks)}
    print_table([{k: round(v, 3) for k, v in costs.items()}], title="fixed costs (medians, seconds)")
    print(f"median over {len(ticks)} tick(s): runner {summary['median_runner_s']:.1f} s, direct"
          f" {summary['median_direct_s']:.1f} s, ratio {summary['median_ratio']:.2f}; extra per notebook"
          f" {summary['median_extra_per_notebook_s']:.2f} s against a kernel start of"
          f" {costs['kernel_start_s']:.2f} s ({costs['kernel_start_and_m5ops_imports_s']:.2f} s with the m5ops"
          f" imports) and the notebooks' own charts ({summary['median_charts_per_notebook_s']:.2f} s);"
          f" papermill's import ({costs['papermill_import_s']:.2f} s) is paid once per runner", flush=True)
    return {"fixed_costs": costs, "ticks": ticks, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", choices=["latency", "tick", "all"], default="all")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--source", type=Path, help="a default-size workspace with trained models to copy"
                        " (else one is made, which takes minutes)")
    parser.add_argument("--ticks", type=int, default=4)
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
        if args.which in ("tick", "all"):
            print("a tick through the runner and Papermill against direct calls:", flush=True)
            results["tick"] = bench_tick(args.source, scratch, ticks, args.quick)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
