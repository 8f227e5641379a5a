"""Runs on a Dask cluster beside the local executor: a backfill through the runner, and LightGBM across workers.

    .venv/bin/python bench/bench_dask.py backfill [--days 28]        # ~15 min on 2 shared cores
    flock /tmp/m5ops-bigmem.lock .venv/bin/python bench/bench_dask.py lightgbm [--series 30490 --days 1941]

``backfill``: one small synthetic workspace with four models (seasonal_naive, moving_average,
lightgbm, hist_gb), copied twice; a real ``m5ops runner --workers 3`` carries out a queued
``tick {"days": N}`` request, once with the local executor and once with ``--executor dask``
on a local cluster of 2 workers (``dask scheduler`` + 2 ``dask worker --nthreads 1 --resources
m5ops_run=1``, started and stopped here). The figure is the wall time from the queue to the
meta-run's end; the ratio dask / local. Target: the ratio at most 1.25 (on 2 cores the cluster
cannot run more at once than the local lanes already do, and every run pays the submission and
a worker's import of papermill once).

``lightgbm``: a synthetic workspace at the M5 shape (default full: 30,490 series x 1,941 days),
the default ``lightgbm`` fitted locally (in a child process, peak RSS its own) and with
``distributed=true`` on a local cluster of 2 workers (each worker's peak RSS sampled), with the
same parameters; wall time and peak memory of each. Target: the distributed fit completes with
each worker's peak below the local fit's (the data is split), and its WRMSSE within 2% of the local one's.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import psutil  # noqa: E402
from common import bigmem_lock, gib, print_table, verdict  # noqa: E402
from dask_cluster import Cluster, cluster_env  # noqa: E402

from m5ops.orchestration.lock import kill_leftovers, read_holder  # noqa: E402
from m5ops.pipeline import lifecycle  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.registry import Registry, empty_registry  # noqa: E402
from m5ops.stores.runs import RunStore  # noqa: E402

ENV = {**os.environ, "TQDM_DISABLE": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "lib"), os.environ.get("PYTHONPATH")) if p)}
RUN_RUNNER = REPO / "runner" / "run_runner.py"
MODELS = {"snaive": ("seasonal_naive", {}), "mavg": ("moving_average", {}),
          "gbm": ("lightgbm", {"num_boost_round": 100}), "hgb": ("hist_gb", {})}
RATIO_TARGET = 1.25


def table(headers: list[str], rows: list[list]) -> None:
    print_table([dict(zip(headers, row)) for row in rows], headers)


def target(ok: bool, text: str) -> bool:
    """The PASS or MISS line of one target."""
    print(f"{verdict(ok)}: {text}", flush=True)
    return ok


def far_schedule() -> str:
    return (datetime.now() - timedelta(hours=1)).strftime("%H:%M")


def small_workspace(folder: Path) -> Path:
    """A synthetic workspace (one store, 2 items a department) with the four models, no versions yet."""
    from m5ops.pipeline.workspace_init import InitOptions, init_workspace

    home = folder / "template"
    init_workspace(home, InitOptions(items=2, days=400, subset={"stores": ["CA_1"]}, progress=False))
    Registry(home / "registry.json").path.write_text(json.dumps(empty_registry()))
    for name, (kind, params) in MODELS.items():
        lifecycle.create_model(Workspace(home), name, kind, params, active=True)
    return home


def backfill_through_runner(home: Path, days: int, *executor: str) -> dict:
    """Queue ``tick {"days": N}``, serve it with a real runner (3 lanes), stop it; wall time and the runs."""
    store = RunStore(home / "runs.db")
    log = open(home.parent / f"runner-{home.name}.log", "wb")
    runner = subprocess.Popen([sys.executable, str(RUN_RUNNER), "--home", str(home), "--at", far_schedule(),
                               "--workers", "3", *executor], stdout=log, stderr=subprocess.STDOUT, env=ENV)
    try:
        meta = store.enqueue("tick", params={"days": days})
        started = time.monotonic()
        while store.get(meta)["status"] in ("queued", "running"):
            if runner.poll() is not None:
                raise RuntimeError(f"the runner exited ({runner.returncode}); see {log.name}")
            time.sleep(0.5)
        seconds = time.monotonic() - started
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(120)
        kill_leftovers(read_holder(Workspace(home)).get("token"))
    runs = [r for r in store.runs(limit=None) if r["task"] != "tick"]
    return {"seconds": seconds, "status": store.get(meta)["status"], "runs": len(runs),
            "trainings": sum(r["task"] == "train" for r in runs),
            "failed": sum(r["status"] != "succeeded" for r in runs),
            "workers": sorted({r["worker"] for r in runs if r.get("worker")})}


def bench_backfill(days: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="m5ops-bench-dask-") as tmp:
        folder = Path(tmp)
        template = small_workspace(folder)
        local_home, dask_home = folder / "local", folder / "dask"
        shutil.copytree(template, local_home)
        shutil.copytree(template, dask_home)
        print(f"backfill of {days} ticks, 4 models, runner --workers 3", flush=True)
        local = backfill_through_runner(local_home, days)
        print(f"  local executor: {local['seconds']:.0f} s", flush=True)
        cluster = Cluster(folder, cluster_env(ENV), workers=2)
        try:
            on_dask = backfill_through_runner(dask_home, days, "--executor", "dask", "--scheduler", cluster.address)
        finally:
            cluster.close()
        print(f"  dask executor (2 local workers): {on_dask['seconds']:.0f} s", flush=True)
    ratio = on_dask["seconds"] / local["seconds"]
    table(["executor", "wall s", "runs", "trainings", "not succeeded", "workers used"],
                [["local", f"{local['seconds']:.1f}", local["runs"], local["trainings"], local["failed"], "-"],
                 ["dask, 2 workers", f"{on_dask['seconds']:.1f}", on_dask["runs"], on_dask["trainings"],
                  on_dask["failed"], len(on_dask["workers"])]])
    ok = ratio <= RATIO_TARGET and not local["failed"] and not on_dask["failed"] and len(on_dask["workers"]) == 2
    print(f"dask / local = {ratio:.2f}")
    return target(ok, f"backfill through a 2-worker cluster at most {RATIO_TARGET}x the local executor "
                       f"({ratio:.2f}x), every run succeeded, both workers used")


# -- LightGBM across the cluster --------------------------------------------------------------------
FIT = """
import json, os, sys, time
sys.path.insert(0, {bench!r})
from common import emit_result
from m5ops.pipeline.modeling import WorkspaceData, train_version, score_models
home, name = sys.argv[1], sys.argv[2]
started = time.perf_counter()
trained = train_version(WorkspaceData.open(home), name, force=True)
seconds = time.perf_counter() - started
wrmsse = float(score_models(WorkspaceData.open(home), [name])["wrmsse"].iloc[0])
emit_result({{"seconds": seconds, "fit_s": trained.record["duration_s"], "rows": trained.record["rows"],
             "wrmsse": wrmsse}})
"""


class PeakSampler:
    """Samples the RSS of processes (a worker and what it started) every 0.5 s; the peak of each."""

    def __init__(self, pids: dict[str, int]):
        self.pids, self.peaks = pids, {name: 0 for name in pids}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _run(self):
        while not self._done.wait(0.5):
            for name, pid in self.pids.items():
                try:
                    root = psutil.Process(pid)
                    rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                except psutil.NoSuchProcess:
                    continue
                self.peaks[name] = max(self.peaks[name], rss)


def bench_lightgbm(series: int | None, days: int, rounds: int | None, lock: bool = True) -> bool:
    from common import run_child
    from m5ops.data.m5files import write_m5_files
    from m5ops.data.synthetic import generate

    params = {} if rounds is None else {"num_boost_round": rounds}
    with bigmem_lock() if lock else contextlib.nullcontext(), \
            tempfile.TemporaryDirectory(prefix="m5ops-bench-dask-gbm-") as tmp:
        folder = Path(tmp)
        files, home = folder / "m5", folder / "ws"
        sizes = {} if series is None else {"n_series": series}
        started = time.perf_counter()
        write_m5_files(generate(seed=7, n_days=days, **sizes), files)
        subprocess.run([sys.executable, "-m", "m5ops.cli", "--home", str(home), "init", "--source", "m5",
                        "--m5-dir", str(files)], check=True, env=ENV, stdout=subprocess.DEVNULL)
        Registry(home / "registry.json").path.write_text(json.dumps(empty_registry()))
        for name, distributed in (("local", False), ("cluster", True)):
            lifecycle.create_model(Workspace(home), name, "lightgbm", {**params, "distributed": distributed},
                                   active=False)
        print(f"workspace made in {time.perf_counter() - started:.0f} s", flush=True)
        script = FIT.format(bench=str(REPO / "bench"))
        local = run_child(["-c", script, str(home), "local"], env=ENV)
        print(f"  local fit: {local['seconds']:.0f} s, peak {gib(local['peak_rss']):.2f} GiB", flush=True)
        cluster = Cluster(folder, cluster_env(ENV), workers=2)
        try:
            pids = {name: cluster.processes[name].pid for name in ("w1", "w2")}
            with PeakSampler(pids) as sampler:
                remote = run_child(["-c", script, str(home), "cluster"], env={**ENV, "M5OPS_DASK_SCHEDULER":
                                                                           cluster.address})
        finally:
            cluster.close()
    table(["fit", "wall s (train + gate)", "fit s", "rows", "peak GiB", "WRMSSE"],
                [["local", f"{local['seconds']:.0f}", f"{local['fit_s']:.0f}", local["rows"],
                  f"{gib(local['peak_rss']):.2f}", f"{local['wrmsse']:.4f}"],
                 ["dask driver (kernel side)", f"{remote['seconds']:.0f}", f"{remote['fit_s']:.0f}", remote["rows"],
                  f"{gib(remote['peak_rss']):.2f}", f"{remote['wrmsse']:.4f}"],
                 *[[f"dask worker {name}", "", "", "", f"{gib(peak):.2f}", ""] for name, peak in sampler.peaks.items()]])
    gap = abs(remote["wrmsse"] - local["wrmsse"]) / local["wrmsse"]
    ok = gap <= 0.02 and max(sampler.peaks.values()) < local["peak_rss"]
    return target(ok, f"distributed WRMSSE within 2% of the local fit ({gap:.2%}) and each worker's peak below"
                       " the local fit's")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("backfill")
    p.add_argument("--days", type=int, default=28)
    p = sub.add_parser("lightgbm")
    p.add_argument("--series", type=int, default=None, help="series (default: the generator's full 30,490)")
    p.add_argument("--days", type=int, default=1941)
    p.add_argument("--rounds", type=int, default=None, help="boosting rounds (default: the kind's)")
    p.add_argument("--no-lock", action="store_true", help="a shape well under 3 GiB: skip the big-memory lock")
    args = parser.parse_args()
    ok = bench_backfill(args.days) if args.what == "backfill" else bench_lightgbm(args.series, args.days, args.rounds,
                                                                                 lock=not args.no_lock)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
