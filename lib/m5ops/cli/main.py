"""The ``m5ops`` command: every refusal is one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from m5ops.cli import commands
from m5ops.errors import M5opsError
from m5ops.logs import configure
from m5ops.orchestration.scheduling import add_arguments as add_runner_arguments
from m5ops.stores.layout import Workspace, default_home

log = logging.getLogger("m5ops.cli")


def _parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="m5ops", description="MLOps pipeline for M5 demand forecasting.")
    parser.add_argument("--home", default=None, help="workspace folder (default: $M5OPS_HOME, else ./workspace)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create a workspace from real M5 files or synthetic data")
    p.add_argument("--source", choices=["synthetic", "m5"], default="synthetic")
    p.add_argument("--m5-dir", help="folder with calendar.csv, sell_prices.csv, sales_train_*.csv")
    p.add_argument("--start-day", type=int, help="last stored day; real days after it are held back (default: last - 56)")
    p.add_argument("--states", nargs="+")
    p.add_argument("--stores", nargs="+")
    p.add_argument("--categories", nargs="+")
    p.add_argument("--departments", nargs="+")
    p.add_argument("--items", type=int, help="keep N items (synthetic: items per department)")
    p.add_argument("--days", type=int, help="days of history (synthetic: to generate; m5: the last N days)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-days", type=int, default=28)
    p.add_argument("--outputs", help="folder for executed notebooks (default: <home>/outputs)")
    p.add_argument("--force", action="store_true", help="replace an existing workspace")

    p = sub.add_parser("tick", help="run N simulated days now: arrival, evaluation, due trainings")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--queue", action="store_true", help="ask the running runner to do it")

    p = sub.add_parser("status", help="simulated today, data size, runner state")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("export", help="write the stored long table of a day range to CSV")
    p.add_argument("--start-day", type=int, required=True)
    p.add_argument("--end-day", type=int, required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("models", help="list models")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("kinds", help="list model kinds and their parameters")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("create", help="create a model")
    p.add_argument("name")
    p.add_argument("--kind", required=True)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--paused", action="store_true")

    for name, text in [("train", "train a model now (resumes a paused one)"), ("pause", "pause weekly retraining"),
                       ("resume", "resume weekly retraining"), ("delete", "delete a model (runs and notebooks stay)")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("name")
        if name == "train":
            p.add_argument("--queue", action="store_true", help="ask the running runner to do it")

    p = sub.add_parser("evaluate", help="evaluate models now")
    p.add_argument("names", nargs="*")
    p.add_argument("--queue", action="store_true", help="ask the running runner to do it")

    p = sub.add_parser("runs", help="recent runs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=20)

    p = sub.add_parser("metrics", help="the metrics history")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model")

    p = sub.add_parser("forecast", help="the current version's forecast of the test window (M5 layout)")
    p.add_argument("name")
    p.add_argument("--out", required=True)

    add_runner_arguments(sub.add_parser("runner", help="run the scheduler (one tick per day, or every N seconds)"))

    p = sub.add_parser("dashboard", help="serve the Voila dashboard")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--host", default="127.0.0.1", help="bind address; anything but 127.0.0.1 requires --token")
    p.add_argument("--token", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    workspace = Workspace(args.home or default_home())
    configure(workspace.logs_dir if workspace.home.is_dir() and args.command != "init" else None)
    try:
        result = getattr(commands, f"cmd_{args.command}")(workspace, args)
    except M5opsError as exc:
        print(f"m5ops {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"m5ops {args.command}: interrupted", file=sys.stderr)
        return 130
    if result is not None:
        print(result if isinstance(result, str) else json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
