"""Long-running services: the runner and the dashboard."""
from __future__ import annotations

import argparse

from m5ops.orchestration.scheduling import add_arguments as add_runner_arguments
from m5ops.stores.layout import Workspace

Args = argparse.Namespace


def add_parsers(sub) -> None:
    """This module's subcommands."""
    add_runner_arguments(sub.add_parser("runner", help="run the scheduler (one tick per day, or every N seconds)"))

    p = sub.add_parser("dashboard", help="serve the Voila dashboard")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--host", default="127.0.0.1", help="bind address; anything but 127.0.0.1 requires --token")
    p.add_argument("--token", default=None)


def cmd_runner(workspace: Workspace, args: Args):
    from m5ops.orchestration.runner import run_from_args

    return run_from_args(workspace.require(), args)


def cmd_dashboard(workspace: Workspace, args: Args):
    from m5ops.dashboard.server import serve

    return serve(workspace.require(), host=args.host, port=args.port, token=args.token)
