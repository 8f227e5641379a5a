"""Commands on alerts and retraining policies: alerts, set-retrain."""
from __future__ import annotations

import argparse

import pandas as pd

from m5ops.cli.arguments import positive_int
from m5ops.pipeline import lifecycle
from m5ops.pipeline.alerts import refresh_alerts
from m5ops.stores.alerts import AlertStore
from m5ops.stores.layout import Workspace
from m5ops.stores.registry import RETRAIN_POLICIES

Args = argparse.Namespace


def add_parsers(sub) -> None:
    """This module's subcommands."""
    p = sub.add_parser("alerts", help="open alerts (degradation, drift, failed or overdue runs, a stopped runner)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="cleared alerts too, newest first")
    p.add_argument("--limit", type=positive_int, default=50)

    p = sub.add_parser("set-retrain", help="how a model is retrained: " + ", ".join(RETRAIN_POLICIES))
    p.add_argument("name")
    p.add_argument("policy", help="comma-separated, e.g. weekly,on-degradation")


def cmd_alerts(workspace: Workspace, args: Args):
    refresh_alerts(workspace.require())  # what holds now, also with no runner to look
    store = AlertStore(workspace.runs_path)
    alerts = store.history(args.limit) if args.all else store.open()
    if args.json:
        return alerts
    if not alerts:
        return "no open alerts" if not args.all else "no alerts yet"
    rows = [{"id": a["id"], "state": a["state"], "kind": a["kind"], "model": a["model"] or "-",
             "raised": a["raised_at"][:19], "message": a["message"][:100]} for a in alerts]
    return pd.DataFrame(rows).to_string(index=False)


def cmd_set_retrain(workspace: Workspace, args: Args) -> str:
    model = lifecycle.set_retrain(workspace.require(), args.name, args.policy)
    return f"{args.name} now retrains {','.join(model['schedule']['retrain'])}"
