"""``m5ops forecast``: an issued forecast (by default the serving model's latest) in M5's submission layout."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from m5ops.data.schema import HORIZON, day_label, day_number
from m5ops.data.store import DayStore
from m5ops.errors import LedgerError, ParameterError, WorkspaceError
from m5ops.pipeline.modeling import WorkspaceData, forecast_matrix, load_current, test_input
from m5ops.pipeline.serving import serving_model_name
from m5ops.stores.atomic import atomic_path
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import ForecastLedger
from m5ops.stores.registry import Registry

Args = argparse.Namespace


def add_parsers(sub) -> None:
    """This module's subcommands."""
    p = sub.add_parser("forecast", help="an issued forecast in M5's submission layout (id,F1..F28; F1 = the day after the issue)")
    p.add_argument("--model", help="the model whose forecast to write (default: the serving model)")
    p.add_argument("--issued", metavar="DAY", help="the issue day, e.g. 1913 or d_1913 (default: the model's latest issue)")
    p.add_argument("--backtest", action="store_true",
                   help="instead: the current version's forecast of the test window (the last 28 stored days)")
    p.add_argument("--out", required=True, metavar="FILE.csv")


def cmd_forecast(workspace: Workspace, args: Args) -> str:
    workspace.require()
    out = _checked_out(args.out)
    name = args.model or _serving(workspace)
    if args.backtest:
        if args.issued is not None:
            raise ParameterError("--backtest writes the test window's forecast; it takes no --issued DAY")
        values, what = _backtest(workspace, name)
    else:
        values, what = _issued(workspace, name, args.issued)
    _write_submission(out, DayStore(workspace.data_dir).series()["id"], values)
    return f"wrote {what} to {out}"


def _checked_out(path: str) -> Path:
    """The output path, refused before any work if its folder does not exist."""
    out = Path(path)
    if not out.parent.resolve().is_dir():
        raise ParameterError(f"--out {path}: folder {out.parent} does not exist; create it or write elsewhere")
    return out


def _serving(workspace: Workspace) -> str:
    """The serving model, or a WorkspaceError saying how to get one."""
    name = serving_model_name(workspace)
    if name is None:
        raise WorkspaceError("no model serves yet (none has a version with a backtest score): let a few days "
                             "arrive with 'm5ops tick', or name a model with --model NAME")
    return name


def _issued(workspace: Workspace, name: str, issued: str | None) -> tuple[np.ndarray, str]:
    """An issue's values and a description: the one of day ``issued``, else the model's latest."""
    ledger = ForecastLedger.of(workspace)
    if issued is None:
        issue = ledger.latest(name)
        if issue is None:
            Registry(workspace.registry_path).get(name)  # an unknown name: the registry's error lists the models
            raise LedgerError(f"{name!r} has issued no forecast yet: each tick issues one for every model "
                              f"with a version ('m5ops tick'; train it first with 'm5ops train {name}')")
    else:
        issue = ledger.read_issue(name, _day(issued))
    first, last = issue.target_days[0], issue.target_days[-1]
    return issue.values, (f"the {name} {issue.version} forecast issued on {day_label(issue.issue_day)} "
                          f"({day_label(first)}..{day_label(last)})")


def _day(text: str) -> int:
    """``1913`` or ``d_1913`` as a day number; ParameterError otherwise."""
    text = str(text).strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    try:
        return day_number(text)
    except Exception:
        raise ParameterError(f"--issued {text!r} is not a day: give its number or label, e.g. 1913 or d_1913") from None


def _backtest(workspace: Workspace, name: str) -> tuple[np.ndarray, str]:
    """The current version's forecast of the test window (what ``forecast`` wrote before issues existed)."""
    data = WorkspaceData.open(workspace.home)
    loaded = load_current(data, name)
    if loaded is None:
        raise WorkspaceError(f"model {name!r} has no version yet: train it with 'm5ops train {name}'")
    model, version = loaded
    start, end = data.split.test_range()
    values = forecast_matrix(model, test_input(data), len(data.series))[:, :HORIZON]
    return values, f"the {name} {version['id']} backtest of {day_label(start)}..{day_label(end)}"


def _write_submission(out: Path, ids: pd.Series, values: np.ndarray) -> None:
    """``id,F1..F28``, one row per series in series order, written atomically."""
    frame = pd.DataFrame(values, columns=[f"F{h}" for h in range(1, values.shape[1] + 1)])
    frame.insert(0, "id", ids.astype(str).to_numpy())
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")
