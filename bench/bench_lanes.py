"""The runner's lanes: how fast a queued short run starts while a full-shape training runs.

    flock /tmp/m5ops-bigmem.lock .venv/bin/python bench/bench_lanes.py   # 30,490 series x 1,941 days, ~8-12 min
    .venv/bin/python bench/bench_lanes.py --quick                          # 2,100 series x 600 days, ~2 min

A full-shape workspace is made as a user would, in a temporary folder: the synthetic generator
writes M5-format files (``write_m5_files(generate(seed=7), DIR)``), then ``m5ops init --source
m5``. Its default models are cut to ``lightgbm`` and ``seasonal-naive``. A real ``m5ops runner``
(wall clock, next tick hours away, the default two lanes) first trains the seasonal-naive model
and carries out one evaluation while idle (the reference); then it trains ``lightgbm`` with its
defaults, and once that training is boosting, evaluations of the seasonal-naive model and an
arrival are queued one after another. The figure is ``started_at - created_at`` in runs.db:
from the queue to the lane's claim. Target: a queued evaluation starts within 1.5 s while the
full-shape training runs. Each short run must also end while the training still runs. The
training is then interrupted (``--grace 0``); its duration is ``bench_training.py``'s business.
"""
from __future__ import annotations

import argparse
import contextlib
import os
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

from common import bigmem_lock, print_table, verdict  # noqa: E402

from m5ops.orchestration.lock import kill_leftovers, read_holder  # noqa: E402
from m5ops.pipeline import lifecycle  # noqa: E402
from m5ops.pipeline.modeling import FIT_PART  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.runner_state import RunnerState  # noqa: E402
from m5ops.stores.runs import RunStore  # noqa: E402

TARGET_S = 1.5
M5OPS = [sys.executable, "-m", "m5ops.cli"]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "lib"), os.environ.get("PYTHONPATH")) if p)}
GENERATE = ("import sys; from m5ops.data.synthetic import generate; from m5ops.data.m5files import write_m5_files;"
            " sizes = eval(sys.argv[2]); write_m5_files(generate(seed=7, **sizes), sys.argv[1])")


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def timed_call(what: str, command: list[str]) -> float:
    """Run a command to its end (its output shown), saying how long it took; raise if it fails."""
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**ENV, "TQDM_DISABLE": "1"})
    seconds = time.perf_counter() - started
    print(f"  {what}: {seconds:.0f} s", flush=True)
    return seconds


def make_workspace(scratch: Path, quick: bool) -> Workspace:
    """M5-format files from the generator, ``m5ops init --source m5``, two models left."""
    files, home = scratch / "m5-files", scratch / "ws"
    sizes = "{'n_items_per_dept': 30, 'n_days': 600}" if quick else "{}"  # {} = the full M5 shape
    timed_call("generating the M5-format files", [sys.executable, "-c", GENERATE, str(files), sizes])
    timed_call("m5ops init --source m5", [*M5OPS, "--home", str(home), "init", "--source", "m5",
                                          "--m5-dir", str(files)])
    workspace = Workspace(home)
    for name in ("hist-gb", "moving-average"):
        lifecycle.delete_model(workspace, name)
    return workspace


def wait_until(condition, timeout_s: float, what: str, runner: subprocess.Popen):
    """Poll ``condition`` every 0.05 s until it returns something true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if runner.poll() is not None:
            raise RuntimeError(f"the runner exited ({runner.returncode}) while waiting for {what}")
        time.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {what} after {timeout_s:.0f} s")


def carry_out(store: RunStore, runner: subprocess.Popen, task: str, params: dict, timeout_s: float) -> dict:
    """Queue one request and wait for it to finish; the run as recorded."""
    run_id = store.enqueue(task, params.get("model"), params)
    run = wait_until(lambda: store.get(run_id)["finished_at"] and store.get(run_id), timeout_s, f"{task} {run_id}",
                     runner)
    if run["status"] != "succeeded":
        raise RuntimeError(f"run {run_id} {task} {run['status']}: {run['error']}")
    return run


def row(label: str, run: dict, training: dict | None) -> dict:
    """One line of the table: the start latency, the duration, and whether the training still ran."""
    still = "-" if training is None else ("yes" if training["status"] == "running" else "NO")
    return {"queued run": label, "queued -> started s": seconds_between(run["created_at"], run["started_at"]),
            "duration s": seconds_between(run["started_at"], run["finished_at"]), "training still running": still}


def bench(workspace: Workspace, evaluations: int) -> tuple[list[dict], dict]:
    """The runner's figures: idle, then beside a lightgbm training; the rows and the training's run."""
    store = RunStore(workspace.runs_path)
    at = (datetime.now() - timedelta(hours=1)).strftime("%H:%M")  # the next scheduled tick: in 23 hours
    log = open(workspace.home.parent / "runner.log", "w")
    runner = subprocess.Popen([*M5OPS, "--home", str(workspace.home), "runner", "--at", at, "--grace", "0",
                               "--retries", "0"], stdout=log, stderr=subprocess.STDOUT, env=ENV)
    rows, evaluate = [], {"models": ["seasonal-naive"]}
    try:
        wait_until(RunnerState(workspace.runs_path).heartbeat, 120, "the runner's first heartbeat", runner)
        rows.append(row("train seasonal-naive, runner idle", carry_out(store, runner, "train",
                        {"model": "seasonal-naive", "manual": True}, 900), None))
        rows.append(row("evaluate, runner idle", carry_out(store, runner, "evaluate", evaluate, 900), None))
        training_id = store.enqueue("train", "lightgbm", {"model": "lightgbm", "manual": True})
        wait_until(lambda: (store.get(training_id)["progress"] or 0) >= FIT_PART[0], 1800,
                   "the lightgbm training to boost", runner)
        print(f"  lightgbm is boosting: {store.get(training_id)['progress_note']}", flush=True)
        for i in range(evaluations):
            run = carry_out(store, runner, "evaluate", evaluate, 900)
            rows.append(row(f"evaluate {i + 1}, beside the training", run, store.get(training_id)))
        run = carry_out(store, runner, "simulate_day", {}, 900)
        rows.append(row("arrival, beside the training", run, store.get(training_id)))
        training = store.get(training_id)
        print(f"  the training reached {training['progress']:.0%}: {training['progress_note']}", flush=True)
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(120)
        killed = kill_leftovers(read_holder(workspace).get("token"))
        log.close()
        if killed:
            print(f"  killed {len(killed)} task process(es) the runner left: {killed}", file=sys.stderr)
    return rows, store.get(training_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,100 series x 600 days instead of the full shape")
    parser.add_argument("--evaluations", type=int, default=3, help="evaluations queued beside the training")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="m5ops-bench-lanes-") as tmp, \
            (contextlib.nullcontext() if args.quick else bigmem_lock()):
        print(f"workspace under {tmp} (removed at the end); "
              f"{'2,100 series x 600 days' if args.quick else 'the full M5 shape: 30,490 series x 1,941 days'}")
        workspace = make_workspace(Path(tmp), args.quick)
        rows, training = bench(workspace, args.evaluations)
    print()
    print_table(rows, title="queued requests to a runner with two lanes (1 for trainings, 1 for the rest)")
    beside = [r for r in rows if r["training still running"] != "-"]
    latency = [r["queued -> started s"] for r in beside if r["queued run"].startswith("evaluate")]
    ended_beside = all(r["training still running"] == "yes" for r in beside)
    print(f"\nthe lightgbm training ran from {training['started_at']} and was {training['status']} at the end")
    print(f"a queued evaluation starts {statistics.median(latency):.2f} s (median, max {max(latency):.2f} s) after it"
          f" is queued while the training runs; target <= {TARGET_S} s: {verdict(max(latency) <= TARGET_S)}")
    print(f"every short run ended while the training still ran: {verdict(ended_beside)}")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
