"""The ``m5ops`` command. Exit status: 0 done, 1 a run it carried out failed, 2 refused input
(one line on stderr naming the problem and the fix; nothing was changed)."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from m5ops.cli import (alert_commands, drift_commands, forecast_commands, model_commands, scenario_commands,
                       service_commands, serving_commands, workspace_commands)
from m5ops.cli.arguments import Parser
from m5ops.errors import M5opsError, RunFailed
from m5ops.logs import configure
from m5ops.stores.layout import Workspace, default_home

log = logging.getLogger("m5ops.cli")
# each adds its subcommands (add_parsers) and handles them (cmd_<name>)
COMMAND_MODULES = (workspace_commands, model_commands, forecast_commands, alert_commands, service_commands, serving_commands,
                   scenario_commands, drift_commands)


def _parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = Parser(prog="m5ops", description="MLOps pipeline for M5 demand forecasting.")
    parser.add_argument("--home", default=None, help="workspace folder (default: $M5OPS_HOME, else ./workspace)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def handler(command: str):
    """The ``cmd_<command>`` function of whichever command module defines it."""
    name = "cmd_" + command.replace("-", "_")
    return next(getattr(module, name) for module in COMMAND_MODULES if hasattr(module, name))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    workspace = Workspace(args.home or default_home())
    configure(workspace.logs_dir if workspace.home.is_dir() and args.command != "init" else None)
    try:
        result = handler(args.command)(workspace, args)
    except RunFailed as exc:
        print(f"m5ops {args.command}: {exc}", file=sys.stderr)
        return 1
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
