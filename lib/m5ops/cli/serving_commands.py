"""Commands on production: serving, promote, rollback, history (the audit log), settings (the serving policy)."""
from __future__ import annotations

import argparse

import pandas as pd

from m5ops.cli.arguments import positive_int
from m5ops.data.schema import day_label
from m5ops.errors import ParameterError
from m5ops.pipeline import serving
from m5ops.stores.audit import AuditLog
from m5ops.stores.layout import Workspace
from m5ops.stores.registry import Registry
from m5ops.stores.serving import ServingStore, check_settings

Args = argparse.Namespace
ACTOR = "cli"
NO_LIVE = "- (no complete issue window yet)"
NO_BACKTEST = "- (not evaluated yet)"


def add_parsers(sub) -> None:
    """This module's subcommands."""
    p = sub.add_parser("serving", help="production, since when and why, and each challenger's live accuracy")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("promote", help="put a model (its current version, or --version) in production")
    p.add_argument("name")
    p.add_argument("--version", help="a kept version of the model (default: its current version)")

    p = sub.add_parser("rollback", help="make an earlier version the model's current one (production's if it serves)")
    p.add_argument("name")
    p.add_argument("--to", help="the version to go back to (default: the one the current version replaced)")

    p = sub.add_parser("history", help="the audit log: every change of production and of current versions")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model")
    p.add_argument("--limit", type=positive_int, default=50)

    p = sub.add_parser("settings", help="show or change the serving policy (gate, promotion, retention)")
    p.add_argument("--gate", help="tolerance of the gate on new versions, e.g. 10%% or 0.10 (with --model: that"
                                  " model's own; 'default' removes it)")
    p.add_argument("--promotion", choices=["auto", "manual"])
    p.add_argument("--promotion-windows", help="complete issue windows the promotion rule compares (default 7)")
    p.add_argument("--promotion-margin", help="how much better a challenger must be, e.g. 5%%")
    p.add_argument("--keep-versions", help="newest versions per model whose artifacts are kept (default 5)")
    p.add_argument("--model", help="change a setting of this model only (--gate)")
    p.add_argument("--json", action="store_true")


def _score(value: float | None, missing: str) -> str:
    """A WRMSSE to four digits, or why there is none."""
    return missing if value is None else f"{value:.4g}"


def _live(live: dict) -> str:
    """``0.612 over 7 windows (issued d_100..d_106)``, or why there is none."""
    if live["wrmsse"] is None:
        return NO_LIVE
    days = live["issue_days"]
    return f"{live['wrmsse']:.4g} over {live['windows']} window(s) (issued {day_label(days[0])}..{day_label(days[-1])})"


def cmd_serving(workspace: Workspace, args: Args):
    view = serving.overview(workspace.require())
    if args.json:
        return view
    prod, policy = view["production"], view["settings"]
    if prod is None:
        lines = ["production: none yet (no model has an evaluated version: 'm5ops tick' trains and evaluates)"]
    else:
        since = f"since {day_label(prod['since_day'])} ({prod['since_at']})" if prod["since_day"] is not None else ""
        lines = [f"production: {prod['model']} {prod['version']} {since}".rstrip(),
                 f"  why:      {prod['why']}",
                 f"  live:     {_live(prod['live'])}",
                 f"  backtest: {_score(prod['backtest_wrmsse'], NO_BACKTEST)}"]
    lines.append("challengers:" if view["challengers"] else "challengers: none")
    for row in view["challengers"]:
        lines.append(f"  {row['model']} {row['version']}: live {_live(row['live'])};"
                     f" backtest {_score(row['backtest_wrmsse'], NO_BACKTEST)}")
    lines.append(_policy_line(policy))
    return "\n".join(lines)


def _policy_line(policy: dict) -> str:
    overrides = ", ".join(f"{m} {t:.0%}" for m, t in policy["gate_overrides"].items())
    return (f"policy: gate {policy['gate_tolerance']:.0%}{f' ({overrides})' if overrides else ''};"
            f" promotion {policy['promotion']} ({policy['promotion_windows']} windows,"
            f" {policy['promotion_margin']:.0%} margin); artifacts of the last {policy['keep_versions']} versions kept")


def cmd_promote(workspace: Workspace, args: Args) -> str:
    entry = serving.promote(workspace.require(), args.name, args.version, actor=ACTOR)
    return f"{entry.model} {entry.version} is in production: {entry.reason}"


def cmd_rollback(workspace: Workspace, args: Args) -> str:
    entry = serving.rollback(workspace.require(), args.name, args.to, actor=ACTOR)
    return f"{entry.model} is back at {entry.version} (was {entry.previous_version}): {entry.reason}"


def cmd_history(workspace: Workspace, args: Args):
    entries = AuditLog(workspace.require().runs_path).entries(limit=args.limit, model=args.model)
    if args.json:
        return [entry.as_dict() for entry in entries]
    if not entries:
        return "no serving changes yet: the audit log fills as versions are trained, promoted or rolled back"
    rows = [{"at": e.at[:19], "day": day_label(e.sim_day), "actor": e.actor, "action": e.action,
             "model": f"{e.model} {e.version or ''}".strip(), "reason": e.reason} for e in entries]
    with pd.option_context("display.max_colwidth", 140, "display.width", 250):
        return pd.DataFrame(rows).to_string(index=False)


def cmd_settings(workspace: Workspace, args: Args):
    workspace.require()
    changes = {key: getattr(args, key) for key in ("promotion", "promotion_windows", "promotion_margin",
                                                    "keep_versions") if getattr(args, key) is not None}
    if args.gate is not None:
        changes["gate_tolerance"] = None if args.gate == "default" else args.gate
    if args.model:
        Registry(workspace.registry_path).get(args.model)  # refuses an unknown model, naming the known ones
        if set(changes) - {"gate_tolerance"}:
            raise ParameterError("with --model only --gate can be set (the rest is the workspace's policy);"
                                 " drop --model to change the others")
    check_settings(changes, args.model)  # a bad value is refused before runs.db is opened
    store = ServingStore(workspace.runs_path)
    policy = store.set(changes, model=args.model) if changes else store.settings()
    return policy.as_dict() if args.json else _policy_line(policy.as_dict())
