"""Commands on the workspace itself: init, tick, status, export."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from m5ops.cli.arguments import out_file
from m5ops.data.store import DayStore
from m5ops.data.synthetic import SIZES
from m5ops.errors import ParameterError, RunFailed, WorkspaceDamaged
from m5ops.models.progress import progress_text
from m5ops.pipeline.check import as_json, check_workspace
from m5ops.pipeline.workspace_init import InitOptions, init_workspace
from m5ops.stores.atomic import atomic_path
from m5ops.stores.layout import DEFAULT_KEEP_FORECASTS, Workspace
from m5ops.stores.runs import RunStore, failed_run_line
from m5ops.stores.status import workspace_status

Args = argparse.Namespace


def add_parsers(sub) -> None:
    """This module's subcommands."""
    p = sub.add_parser("init", help="create a workspace from real M5 files or synthetic data")
    p.add_argument("--source", choices=["synthetic", "m5"], default="synthetic")
    p.add_argument("--m5-dir", help="folder with calendar.csv, sell_prices.csv, sales_train_*.csv")
    p.add_argument("--start-day", type=int, help="last stored day; real days after it are held back (default: last - 56)")
    p.add_argument("--states", nargs="+")
    p.add_argument("--stores", nargs="+")
    p.add_argument("--categories", nargs="+")
    p.add_argument("--departments", nargs="+")
    p.add_argument("--size", choices=list(SIZES),
                   help="synthetic shape: demo (210 series, the default) or full (M5's 30,490 series x 1,941 days); "
                        "--days and --stores narrow it, --items replaces it")
    p.add_argument("--items", type=int, help="keep N items (synthetic: items per department, instead of --size)")
    p.add_argument("--days", type=int, help="days of history (synthetic: to generate; m5: the last N days)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-days", type=int, default=28)
    p.add_argument("--outputs", help="folder for executed notebooks (default: <home>/outputs)")
    p.add_argument("--keep-forecasts", metavar="DAYS|all", default=str(DEFAULT_KEEP_FORECASTS),
                   help=f"issue days of forecasts kept for models that do not serve (default {DEFAULT_KEEP_FORECASTS};"
                        " the serving model keeps every issue); 'all' keeps everything")
    p.add_argument("--force", action="store_true", help="replace an existing workspace")

    p = sub.add_parser("tick", help="run N simulated days now: arrival, evaluation, due trainings")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--queue", action="store_true", help="ask the running runner to do it")

    p = sub.add_parser("check", help="verify the workspace: days, features, registry, models, runs.db")
    p.add_argument("--json", action="store_true")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="also run the check on every worker of this Dask cluster")

    p = sub.add_parser("status", help="simulated today, data size, runner state")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("export", help="write the stored long table of a day range to CSV")
    p.add_argument("--start-day", type=int, required=True)
    p.add_argument("--end-day", type=int, required=True)
    p.add_argument("--out", required=True, type=out_file)


def init_options(args: Args) -> InitOptions:
    """What ``m5ops init`` was asked for, as ``init_workspace`` takes it."""
    subset = {k: getattr(args, k) for k in ("states", "stores", "categories", "departments") if getattr(args, k)}
    return InitOptions(source=args.source, m5_dir=args.m5_dir, start_day=args.start_day, subset=subset,
                       size=args.size, items=args.items, days=args.days, seed=args.seed,
                       test_days=args.test_days, outputs=args.outputs,
                       keep_forecasts=_keep_forecasts(args.keep_forecasts))


def cmd_init(workspace: Workspace, args: Args) -> str:
    options = init_options(args)
    init_workspace(workspace.home, options, force=args.force)
    status = workspace_status(workspace)
    return (f"workspace ready at {workspace.home}: {status.series} series, today {status.today} "
            f"({status.date}), {status.held_back_left} real days held back")


def _keep_forecasts(text: str) -> int | None:
    """``--keep-forecasts``: a number of days, or 'all' (None); the range is checked by init."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise ParameterError(f"--keep-forecasts {text!r} is not a number of days; give e.g. 56, or 'all'") from None


def cmd_tick(workspace: Workspace, args: Args) -> str:
    from m5ops.orchestration.runner import backfill

    workspace.require()
    if args.days < 1:
        raise ParameterError(f"--days must be at least 1, got {args.days}")
    if args.queue:
        run_id = RunStore(workspace.runs_path).enqueue("tick", params={"days": args.days})
        return f"queued tick x{args.days} as run {run_id}"
    runs = backfill(workspace, args.days)  # holds the runner lock: refused while a runner runs
    failed = [r for r in runs if r["status"] != "succeeded"]
    status = workspace_status(workspace)
    summary = f"today is {status.today} ({status.date}); {len(runs)} run(s), {len(failed)} not succeeded"
    if failed:
        raise RunFailed(f"{summary}; first: {failed_run_line(failed[0])}")
    return summary


def cmd_status(workspace: Workspace, args: Args):
    status = workspace_status(workspace).as_dict()
    if args.json:
        return status
    runner = "alive (pid %s)" % status["runner"]["pid"] if status["runner_alive"] else \
        f"not running: start it with 'm5ops --home {workspace.home} runner'"
    return "\n".join([
        f"today:     {status['today']} ({status['date']})",
        f"data:      {status['days']} days x {status['series']} series = {status['rows']} rows",
        f"held back: {status['held_back_days_left']} real days left",
        f"runner:    {runner}",
        f"schedule:  {_schedule_line(status['schedule'], status['runner_alive'])}",
        f"running:   {', '.join(_with_progress(line, status['progress']) for line in status['running']) or '-'}",
        f"queued:    {', '.join(status['queued']) or '-'}",
        f"alerts:    {len(status['alerts'])} open" + (" ('m5ops alerts' lists them)" if status["alerts"] else ""),
        f"scenarios: {', '.join(status['scenarios']) or '-'}",
    ])


def _with_progress(label: str, progress: dict) -> str:
    """``<id> train-gb (42% boosting round 170 of 400)``."""
    run = progress[label.split()[0]]
    return f"{label} ({progress_text(run['fraction'], run['note'])})"


def _schedule_line(state: dict, alive: bool) -> str:
    """How the runner ticks, when it last did, and (while it runs) when it ticks next."""
    if not state:
        return "no runner has run in this workspace yet"
    line = f"{state.get('schedule', '?')}, last tick {state.get('last_tick_at') or 'never'}"
    return line + (f", next tick {state['next_tick_at']}" if alive and state.get("next_tick_at") else "")


def cmd_check(workspace: Workspace, args: Args):
    problems = check_workspace(workspace)
    if getattr(args, "scheduler", None):
        from m5ops.pipeline.check import check_from_workers

        problems += check_from_workers(workspace, args.scheduler)
    if problems:  # the report on stdout, the one-line verdict on stderr, exit 1
        print(json.dumps(as_json(problems), indent=2) if args.json else "\n".join(p.line() for p in problems))
        raise WorkspaceDamaged(f"{len(problems)} problem(s) in {workspace.home}; each is listed above with its repair")
    if args.json:
        return as_json(problems)
    workers = " here and on every Dask worker" if getattr(args, "scheduler", None) else ""
    return f"workspace {workspace.home} is sound{workers}: days, features, registry, model versions and runs.db checked"


def cmd_export(workspace: Workspace, args: Args) -> str:
    store = DayStore(workspace.require().data_dir)
    table = store.read_long(args.start_day, args.end_day)
    out = Path(args.out)
    from m5ops.stores.atomic import atomic_path

    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, date_format="%Y-%m-%d")
    return f"wrote {len(table)} rows to {out}"
