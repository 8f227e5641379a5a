"""Demand scenarios: scenario add | list | remove (what multiplies the sales of arriving days)."""
from __future__ import annotations

import argparse

import pandas as pd

from m5ops.data.schema import day_label, day_number
from m5ops.data.store import DayStore
from m5ops.errors import DataError
from m5ops.pipeline.scenarios import add_scenario
from m5ops.stores.layout import Workspace
from m5ops.stores.scenarios import ScenarioStore

Args = argparse.Namespace


def day_argument(text: str) -> int:
    """A day number, as ``1890`` or ``d_1890``."""
    try:
        return int(text) if text.strip().lstrip("-").isdigit() else day_number(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(sub) -> None:
    """This module's subcommands."""
    p = sub.add_parser("scenario", help="demand scenarios: multiply the sales of arriving days for a slice")
    actions = p.add_subparsers(dest="scenario_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="multiply the sales of days --from-day..--to-day by --factor")
    add.add_argument("--from-day", type=day_argument, required=True, help="first day it applies to (1890 or d_1890)")
    add.add_argument("--to-day", type=day_argument, help="last day it applies to (default: open-ended)")
    add.add_argument("--factor", type=float, required=True, help="e.g. 1.6 for +60%%, 0.5 to halve (must be > 0)")
    add.add_argument("--store", help="only this store's series, e.g. CA_1")
    add.add_argument("--category", help="only this category's series, e.g. FOODS")
    add.add_argument("--department", help="only this department's series, e.g. FOODS_3")
    listing = actions.add_parser("list", help="the active scenarios (--all: removed ones too)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--json", action="store_true")
    remove = actions.add_parser("remove", help="stop a scenario: days arriving from now on are left as they are")
    remove.add_argument("id", type=int)


def cmd_scenario(workspace: Workspace, args: Args):
    workspace.require()
    return {"add": _add, "list": _list, "remove": _remove}[args.scenario_command](workspace, args)


def _add(workspace: Workspace, args: Args) -> str:
    scenario = add_scenario(workspace, args.from_day, args.to_day, args.factor, args.store, args.category,
                            args.department)
    today = DayStore(workspace.data_dir).last_day()
    first = max(scenario.from_day, today + 1)
    return (f"scenario {scenario.label()} added; the first day it changes is {day_label(first)}"
            f" (today is {day_label(today)})")


def _list(workspace: Workspace, args: Args):
    store = ScenarioStore(workspace.runs_path)
    scenarios, applied = store.scenarios(include_removed=args.all), store.days_applied()
    rows = [{**s.as_dict(), "days_applied": applied.get(s.id, 0)} for s in scenarios]
    if args.json:
        return rows
    if not rows:
        return "no scenarios" if args.all else "no active scenarios (add one with 'm5ops scenario add')"
    table = pd.DataFrame([{"id": r["id"], "scenario": r["label"], "days applied": r["days_applied"],
                           "state": "active" if r["active"] else f"removed {r['removed_at'][:19]}"} for r in rows])
    return table.to_string(index=False)


def _remove(workspace: Workspace, args: Args) -> str:
    scenario = ScenarioStore(workspace.runs_path).remove(args.id)
    return f"scenario {scenario.label()} removed; days arriving from now on are left as they are"
