"""The whole loop at the full M5 shape: init from M5-format files, a training of each default kind, ticks.

    flock /tmp/m5ops-bigmem.lock .venv/bin/python bench/bench_full_loop.py   # 30,490 x 1,941, ~40 min, takes the lock
    .venv/bin/python bench/bench_full_loop.py --quick                         # 1,400 series, ~3 min: a smoke run
    .venv/bin/python bench/bench_full_loop.py --keep DIR                      # keep the workspace (DIR/ws) afterwards
    .venv/bin/python bench/bench_full_loop.py --home DIR/ws --steps train:hist-gb   # one step again, on a kept workspace
    .venv/bin/python bench/bench_full_loop.py --home DIR/ws --steps tick --profile  # a tick's steps under pyinstrument

As a user with the real files would: synthetic data of the full shape (``generate``) are written
as M5-format CSV files (``write_m5_files``) into a temporary folder, and ``init_workspace`` reads
them (``--source m5 --m5-dir``: d_1..d_1885 stored, the last 56 days held back). Then a training
of each default model (``tasks.train``), then ticks: the arrival of the next held-back day with
the live scoring of every stored forecast of it (``tasks.simulate_day``), the evaluation of every
model on the test window (``tasks.evaluate``), the issue of every model's forecast
(``tasks.issue_forecast``). Before the steady-state tick, the ledger is filled to what 28 days of
ticks leave (every model's issue of each of the 27 days before today, copies of today's values
under their own issue day), so its arrival scores 28 issues per model and completes the window of
one, as every arrival does once the loop has run four weeks.

Every step runs in its own child process (so its peak RSS, VmHWM, is its own: the interpreter,
the imports and the step, as in a runner's fresh kernel); "step s" is the task function's wall
time, "child s" includes the interpreter start and the imports. Targets: init <= 120 s, a
steady-state tick (its three steps) <= 60 s, lightgbm training <= 10 min, hist_gb <= 15 min, the
baselines' training <= 5 s and 1 GiB, every step <= 8 GiB peak, an issue <= 8 MB on disk.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import bigmem_lock, emit_result, gib, print_table, run_child, verdict

M5_SERIES = 30_490
QUICK_ITEMS = 20  # x 7 departments x 10 stores = 1,400 series
MODELS = ["seasonal-naive", "moving-average", "lightgbm", "hist-gb"]
TICK_STEPS = ["arrival", "evaluate", "issue"]
TARGET_PEAK_GIB = 8.0
TARGET_INIT_S = 120.0
TARGET_TICK_S = 60.0
TARGET_TRAIN_S = {"lightgbm": 600.0, "hist-gb": 900.0, "seasonal-naive": 5.0, "moving-average": 5.0}
TARGET_BASELINE_PEAK_GIB = 1.0
TARGET_ISSUE_MB = 8.0
RUN_ID = "manual"  # a run id no runs.db row has: the tasks then report no progress (as a notebook run by hand)


# --- the children ---------------------------------------------------------------------------

def _step(fn, *args, **kwargs):
    """(seconds, result) of the measured call, after a profile of it if M5OPS_BENCH_PROFILE names a file."""
    profile_to = os.environ.get("M5OPS_BENCH_PROFILE")
    profiler = None
    if profile_to:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.stop()
        Path(profile_to).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return seconds, result


def child_m5files(folder: str, items: int | None, seed: int) -> None:
    """Generate the synthetic data set and write it as M5-format CSV files."""
    from m5ops.data.m5files import write_m5_files
    from m5ops.data.synthetic import generate

    gen_s, data = _step(generate, n_items_per_dept=items, seed=seed)
    write_s, paths = _step(write_m5_files, data, folder)
    _emit({"seconds": gen_s + write_s, "generate_s": gen_s, "write_s": write_s, "series": data.n_series,
                 "days": len(data.days()), "mb": sum(p.stat().st_size for p in paths.values()) / 1e6})


def child_init(home: str, m5_dir: str) -> None:
    """``init_workspace`` from the M5-format files (``m5ops init --source m5 --m5-dir``)."""
    from m5ops.pipeline.workspace_init import InitOptions, init_workspace

    seconds, _ = _step(init_workspace, home, InitOptions(source="m5", m5_dir=m5_dir, progress=False))
    _emit({"seconds": seconds, "disk_mb": _du_mb(Path(home))})


def child_train(home: str, model: str, overrides: list[str]) -> None:
    """One training (``tasks.train``), forced through the gate so each kind gets its version.

    ``overrides`` (``MODEL.NAME=VALUE``, the kind's schema checks them) change the model's
    registered parameters first, e.g. fewer rounds to give the ticks a version quickly.
    """
    from m5ops.models import get_kind
    from m5ops.pipeline import tasks
    from m5ops.stores.layout import Workspace
    from m5ops.stores.registry import Registry

    mine = dict(o.split(".", 1)[1].split("=", 1) for o in overrides if o.startswith(f"{model}."))
    if mine:
        registry = Registry(Workspace(home).registry_path)
        params = get_kind(registry.get(model)["kind"]).schema.validate({**registry.get(model)["params"], **mine})
        registry.update(lambda data: data["models"][model].update(params=params))
    seconds, trained = _step(tasks.train, home, RUN_ID, model, manual=True, force=True)
    record = trained.record
    _emit({"seconds": seconds, "rows": record["rows"], "fit_s": record["duration_s"],
                 "version": trained.version_id, "train_days": record["metrics"]["train_days"], "params_set": mine})


def child_arrival(home: str) -> None:
    """The arrival task: the next held-back day, its features, the live scoring of its forecasts."""
    from m5ops.pipeline import tasks
    from m5ops.stores.ledger import ForecastLedger
    from m5ops.stores.layout import Workspace

    ledger = ForecastLedger.of(Workspace(home))
    seconds, arrival = _step(tasks.simulate_day, home, RUN_ID)
    scored = sum(1 for d in range(arrival.day - 28, arrival.day) for _ in ledger.models_issued(d))
    _emit({"seconds": seconds, "day": arrival.day, "source": arrival.source, "issues_scored": scored})


def child_evaluate(home: str) -> None:
    """The evaluation task: every model's current version on the test window."""
    from m5ops.pipeline import tasks

    seconds, table = _step(tasks.evaluate, home, RUN_ID)
    _emit({"seconds": seconds, "models": len(table),
                 "wrmsse": {r["model"]: r["wrmsse"] for r in table.to_dict("records")}})


def child_issue(home: str) -> None:
    """The issue task: every model's forecast of the next 28 days, into the ledger."""
    from m5ops.pipeline import tasks
    from m5ops.stores.ledger import ForecastLedger
    from m5ops.stores.layout import Workspace

    seconds, issued = _step(tasks.issue_forecast, home, RUN_ID)
    ledger = ForecastLedger.of(Workspace(home))
    sizes = {i.model: ledger.issue_path(i.model, i.issue_day).stat().st_size / 1e6 for i in issued}
    _emit({"seconds": seconds, "issued": len(issued), "issue_mb": sizes})


def child_prefill(home: str) -> None:
    """Fill the ledger as 28 days of ticks would: every model's issue on each of the 27 days before today."""
    from m5ops.data.schema import HORIZON
    from m5ops.data.store import DayStore
    from m5ops.stores.ledger import ForecastLedger, Issue
    from m5ops.stores.layout import Workspace

    workspace = Workspace(home)
    ledger, today = ForecastLedger.of(workspace), DayStore(workspace.data_dir).last_day()
    start = time.perf_counter()
    written = 0
    for model in ledger.models_issued(today):
        issue = ledger.read_issue(model, today)
        for day in range(today - HORIZON + 1, today):
            if not ledger.has_issue(model, day):
                ledger.write(Issue(model, issue.version, day, issue.values, issue.price_source, "bench-prefill"))
                written += 1
    _emit({"seconds": time.perf_counter() - start, "written": written})


def _emit(result: dict) -> None:
    """``emit_result`` with the child's CPU seconds (user + system): on a busy machine, wall minus CPU is waiting."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    emit_result({**result, "cpu_s": usage.ru_utime + usage.ru_stime})


def _du_mb(folder: Path) -> float:
    """Size of a folder's files, MB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run_as_child(args) -> None:
    """Dispatch the ``--child STEP`` of the parent."""
    step = args.child
    if step == "m5files":
        child_m5files(args.m5_dir, args.items, args.seed)
    elif step == "init":
        child_init(args.home, args.m5_dir)
    elif step.startswith("train:"):
        child_train(args.home, step.split(":", 1)[1], args.param)
    else:
        {"arrival": child_arrival, "evaluate": child_evaluate, "issue": child_issue,
         "prefill": child_prefill}[step](args.home)


# --- the parent -----------------------------------------------------------------------------

class Loop:
    """Runs the steps, each in its own child, and keeps their figures."""

    def __init__(self, home: Path, m5_dir: Path, items: int | None, seed: int, profile_dir: Path | None):
        self.home, self.m5_dir, self.items, self.seed = home, m5_dir, items, seed
        self.profile_dir = profile_dir
        self.params: list[str] = []
        self.rows: list[dict] = []

    def run(self, step: str, label: str | None = None) -> dict:
        """One step in its own child; its figures appended to the table."""
        argv = [str(Path(__file__).resolve()), "--child", step, "--home", str(self.home), "--m5-dir", str(self.m5_dir),
                "--seed", str(self.seed), *(["--items", str(self.items)] if self.items else []),
                *[f"--param={p}" for p in self.params]]
        env = {}
        if self.profile_dir is not None and step in TICK_STEPS:
            env["M5OPS_BENCH_PROFILE"] = str(self.profile_dir / f"{label or step}.txt")
        load = os.getloadavg()[0]
        start = time.perf_counter()
        result = run_child(argv, env=env)
        result.update(step=label or step, child_s=time.perf_counter() - start, load=load)
        self.rows.append(result)
        print(f"[{time.strftime('%H:%M:%S')}] {result['step']}: {result['seconds']:.1f} s (child CPU "
              f"{result.get('cpu_s', 0):.1f} s), "
              f"peak {gib(result['peak_rss']):.2f} GiB  {_extra(result)}", file=sys.stderr, flush=True)
        return result

    def tick(self, name: str) -> list[dict]:
        """The three steps of one tick."""
        return [self.run(step, f"{name}: {step}") for step in TICK_STEPS]


def _extra(r: dict) -> str:
    """The figures of a step beside time and memory, as a short text."""
    keep = {k: v for k, v in r.items() if k not in ("seconds", "peak_rss", "step", "child_s", "load", "cpu_s")}
    return json.dumps(keep, default=str)[:300]


def run_steps(loop: Loop, steps: list[str], models: list[str]) -> dict:
    """The requested steps in order; the figures of the ticks by name."""
    ticks = {}
    for step in steps:
        if step == "m5files":
            loop.run("m5files", "M5-format files (generate + write CSV)")
        elif step == "init":
            loop.run("init", "init from the M5 files")
        elif step == "train":
            for model in models:
                loop.run(f"train:{model}", f"train {model}")
        elif step.startswith("train:"):
            loop.run(step, f"train {step.split(':', 1)[1]}")
        elif step == "tick":
            ticks["first tick"] = loop.tick("first tick")
            loop.run("prefill", "fill the ledger to 28 issue days (setup, not a step)")
            ticks["steady tick"] = loop.tick("steady tick")
        else:
            raise SystemExit(f"unknown step {step!r}: use m5files, init, train, train:MODEL, tick")
    return ticks


def report(loop: Loop, ticks: dict, full: bool) -> bool:
    """The table of steps, then one line per target; False if a full-shape target is missed."""
    print_table([{"step": r["step"], "step_s": r["seconds"], "child_s": r["child_s"], "child_cpu_s": r.get("cpu_s", ""),
                  "peak_gib": gib(r["peak_rss"]), "load_1min": r["load"], "notes": _notes(r)} for r in loop.rows],
                title="Steps (each in its own child process; peak = the child's VmHWM)")
    print()
    checks = []

    def target(what: str, value: float, limit: float, unit: str) -> None:
        ok = value <= limit
        checks.append(ok)
        judged = verdict(ok) if full else "not the full shape: not judged"
        print(f"{what}: {value:.2f} {unit}  (target <= {limit:g} {unit}: {judged})")

    for r in loop.rows:
        if "fill the ledger" not in r["step"]:
            target(f"{r['step']} peak", gib(r["peak_rss"]), TARGET_PEAK_GIB, "GiB")
    for r in loop.rows:
        if r["step"] == "init from the M5 files":
            target("init time", r["seconds"], TARGET_INIT_S, "s")
        model = r["step"][len("train "):] if r["step"].startswith("train ") else None
        if model in TARGET_TRAIN_S:
            target(f"train {model} time", r["seconds"], TARGET_TRAIN_S[model], "s")
            if model in ("seasonal-naive", "moving-average"):
                target(f"train {model} peak", gib(r["peak_rss"]), TARGET_BASELINE_PEAK_GIB, "GiB")
        for model, mb in (r.get("issue_mb") or {}).items():
            target(f"{r['step']} {model} on disk", mb, TARGET_ISSUE_MB, "MB")
    for name, steps in ticks.items():
        total = sum(s["seconds"] for s in steps)
        if name == "steady tick":
            target("steady-state tick (arrival + evaluate + issue) time", total, TARGET_TICK_S, "s")
        else:
            print(f"{name} (arrival + evaluate + issue): {total:.1f} s, child processes {sum(s['child_s'] for s in steps):.1f} s")
    return all(checks) or not full


def _notes(r: dict) -> str:
    """What a step did, briefly."""
    if "rows" in r:
        return f"{r['rows']:,} rows, {r['train_days']} days" + (f", {r['params_set']}" if r.get("params_set") else "")
    if "issues_scored" in r:
        return f"day {r['day']} ({r['source']}), {r['issues_scored']} issues scored"
    if "issue_mb" in r:
        return f"{r['issued']} issues, max {max(r['issue_mb'].values(), default=0):.2f} MB"
    if "disk_mb" in r:
        return f"workspace {r['disk_mb']:,.0f} MB"
    if "mb" in r:
        return f"{r['series']:,} x {r['days']:,}, {r['mb']:,.0f} MB of CSV"
    if "written" in r:
        return f"{r['written']} issues written"
    if "models" in r:
        return f"{r['models']} models"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ITEMS} items per department (1,400 series)")
    parser.add_argument("--items", type=int, default=None, help="items per department (default: the full M5 shape)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", default="m5files,init,train,tick",
                        help="comma-separated: m5files, init, train, train:MODEL, tick (default: all)")
    parser.add_argument("--models", default=",".join(MODELS), help="the models 'train' trains")
    parser.add_argument("--keep", default=None, help="build in this folder and keep it (DIR/m5, DIR/ws)")
    parser.add_argument("--home", default=None, help="an existing workspace to run the steps on (with --steps)")
    parser.add_argument("--m5-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="profile each tick step (pyinstrument) into DIR/profiles")
    parser.add_argument("--param", action="append", default=[], metavar="MODEL.NAME=VALUE",
                        help="a model parameter set before its training (repeatable): the registered model changes")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    items = args.items or (QUICK_ITEMS if args.quick else None)
    if args.child:
        args.items = items
        run_as_child(args)
        return 0

    root = Path(args.keep or tempfile.mkdtemp(prefix="m5ops-bench-loop-"))
    root.mkdir(parents=True, exist_ok=True)
    home = Path(args.home) if args.home else root / "ws"
    profile_dir = (root / "profiles") if args.profile else None
    if profile_dir:
        profile_dir.mkdir(exist_ok=True)
    loop = Loop(home, root / "m5", items, args.seed, profile_dir)
    loop.params = args.param
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    small = items is not None and items <= 30
    try:
        with contextlib.nullcontext() if small else bigmem_lock():
            ticks = run_steps(loop, steps, [m.strip() for m in args.models.split(",") if m.strip()])
    finally:
        if not args.keep and not args.home:
            shutil.rmtree(root, ignore_errors=True)
    ok = report(loop, ticks, full=items is None)
    if profile_dir:
        print(f"\nprofiles of the tick steps: {profile_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
