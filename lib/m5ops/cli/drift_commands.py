"""The ``drift`` command: each model's latest drift table and its target's PSI over time."""
from __future__ import annotations

import argparse

import pandas as pd

from m5ops.data.schema import day_label
from m5ops.evaluation.drift import SIGNIFICANT, STABLE
from m5ops.pipeline.drift import drift_report
from m5ops.stores.layout import Workspace

Args = argparse.Namespace
HISTORY_SHOWN = 14  # days of the target's PSI in the text output (--json has them all)


def add_parsers(sub) -> None:
    """This module's subcommands."""
    p = sub.add_parser("drift", help="drift of each model's features and target against its training window"
                                     f" (PSI < {STABLE:g} stable, < {SIGNIFICANT:g} moderate, else significant)")
    p.add_argument("model", nargs="?", help="one model (default: every model with drift recorded)")
    p.add_argument("--json", action="store_true")


def cmd_drift(workspace: Workspace, args: Args):
    report = drift_report(workspace.require(), args.model)
    if args.json:
        return report
    if not report:
        return "no drift recorded yet: it is recorded by each evaluation ('m5ops evaluate' or a tick)"
    return "\n\n".join(_model_text(name, entry) for name, entry in report.items())


def _model_text(name: str, entry: dict) -> str:
    """One model's heading, its columns by PSI (the target first) and the target's recent PSI."""
    (r0, r1), (c0, c1) = entry["reference"], entry["current"]
    heading = (f"{name} {entry['version']} on {day_label(entry['sim_day'])}: training window"
               f" {day_label(r0)}..{day_label(r1)} against {day_label(c0)}..{day_label(c1)}")
    rows = [{"column": c["column"] + (" (target)" if c["target"] else ""), "kind": c["kind"], "psi": _num(c["psi"]),
             "band": c["band"], "wasserstein": _num(c["wasserstein"]), "jensen_shannon": _num(c["jensen_shannon"]),
             "n_ref": c["n_reference"], "n_cur": c["n_current"]} for c in entry["columns"]]
    recent = entry["target_history"][-HISTORY_SHOWN:]
    history = ", ".join(f"{day_label(h['sim_day'])} {_num(h['psi'])}" for h in recent)
    return f"{heading}\n{pd.DataFrame(rows).to_string(index=False)}\ntarget PSI over time: {history}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
