"""Commands on models and their runs: models, kinds, create, train, evaluate, pause, resume, delete, runs, metrics."""
from __future__ import annotations

import argparse
import math

import pandas as pd

from m5ops.cli.arguments import out_file, positive_int
from m5ops.cli.progress_bar import terminal_bar
from m5ops.errors import ParameterError, RunFailed
from m5ops.evaluation.hierarchy import METRIC_LEVELS, OVERALL, level_title
from m5ops.evaluation.metrics import excluded_note, format_score
from m5ops.models import describe_kinds
from m5ops.pipeline import lifecycle as management
from m5ops.pipeline import serving
from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import LEVELLED_METRIC, MetricStore
from m5ops.stores.registry import Registry
from m5ops.stores.runs import RunStore, failed_run_line

Args = argparse.Namespace


def add_parsers(sub) -> None:
    """This module's subcommands."""
    p = sub.add_parser("models", help="list models")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("kinds", help="list model kinds and their parameters")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("create", help="create a model")
    p.add_argument("name")
    p.add_argument("--kind", required=True)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--paused", action="store_true")
    p.add_argument("--retrain", default=None, metavar="POLICY",
                   help="weekly (default), on-degradation, on-drift, or a combination: weekly,on-degradation")

    for name, text in [("train", "train a model now (resumes a paused one)"), ("pause", "pause weekly retraining"),
                       ("resume", "resume weekly retraining"), ("delete", "delete a model (runs and notebooks stay)")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("name")
        if name == "train":
            p.add_argument("--queue", action="store_true", help="ask the running runner to do it")
            p.add_argument("--force", action="store_true", help="make the new version current even if the gate"
                                                                " finds it worse than the current one")

    p = sub.add_parser("evaluate", help="evaluate models now")
    p.add_argument("names", nargs="*")
    p.add_argument("--queue", action="store_true", help="ask the running runner to do it")

    p = sub.add_parser("runs", help="recent runs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=positive_int, default=20)

    p = sub.add_parser("metrics", help="the metrics history: backtest (the test window) and live (issued forecasts)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model")
    p.add_argument("--source", choices=["backtest", "live", "all"], default="all",
                   help="backtest: each day's test window; live: issued forecasts against what then happened")
    p.add_argument("--level", default=OVERALL, metavar="LEVEL",
                   help="'all' (default: every metric, overall) or a WRMSSE level 1-12 (1 total ... 12 item x store)")


def cmd_models(workspace: Workspace, args: Args):
    registry = Registry(workspace.require().registry_path)
    models, deleted = registry.models(), registry.deleted()
    production = serving.resolve(workspace, models)
    if args.json:  # each version with its lineage, and its status as served (serving, current, rejected, retired)
        return {"models": serving.with_statuses(models, production), "deleted": deleted,
                "production": production and production.as_dict()}
    rows = [{"name": n, "kind": m["kind"], "state": "active" if m["schedule"]["active"] else "paused",
             "versions": len(m["versions"]), "current": _current_label(m, production),
             "last_trained": (m["versions"][-1]["sim_date"] if m["versions"] else "-")} for n, m in models.items()]
    return pd.DataFrame(rows).to_string(index=False) if rows else "no models"


def _current_label(model: dict, production) -> str:
    """``v3``, ``v3 (serving)``, or ``-``."""
    current = model.get("current_version")
    if current is None:
        return "-"
    return f"{current} (serving)" if production and production.model == model["name"] else current


def cmd_kinds(workspace: Workspace, args: Args):
    kinds = describe_kinds()
    if args.json:
        return kinds
    lines = []
    for name, info in kinds.items():
        params = ", ".join(f"{p['name']}={p['default']}" for p in info["params"])
        lines.append(f"{name}: {info['description']}\n    {params}")
    return "\n".join(lines)


def _parse_params(pairs: list[str]) -> dict:
    """``KEY=VALUE`` strings as a dict (values stay strings: the kind's schema coerces them)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ParameterError(f"--param {pair!r} is not KEY=VALUE, e.g. --param learning_rate=0.05")
        params[key.strip()] = value.strip()
    return params


def cmd_create(workspace: Workspace, args: Args) -> str:
    management.create_model(workspace.require(), args.name, args.kind, _parse_params(args.param), active=not args.paused,
                            retrain=args.retrain)
    return f"created model {args.name} ({args.kind}{', paused' if args.paused else ''})"


def cmd_train(workspace: Workspace, args: Args) -> str:
    Registry(workspace.require().registry_path).get(args.name)
    params = {"model": args.name, "manual": True, "force": args.force, "actor": "cli"}
    if args.queue:
        run_id = RunStore(workspace.runs_path).enqueue("train", model=args.name, params=params)
        return f"queued training of {args.name} as run {run_id}"
    run = _run_in_foreground(workspace, "train", params, f"train {args.name}")
    return f"{_finished(run)}\n{_verdict_line(workspace, args.name, run['id'])}"


def _verdict_line(workspace: Workspace, name: str, run_id: str) -> str:
    """What the gate made of the version a run trained."""
    model = Registry(workspace.registry_path).get(name)
    version = next((v for v in reversed(model["versions"]) if (v.get("lineage") or {}).get("run_id") == run_id), None)
    if version is None:
        return f"{name}: no version of this run is registered"
    gate = version.get("gate") or {}
    outcome = {"accepted": "is current", "forced": "is current (forced past the gate)",
               "rejected": f"was rejected; {model.get('current_version')} stays current"}.get(gate.get("verdict"), "")
    return f"{name} {version['id']} {outcome}: WRMSSE {gate.get('candidate')}" \
           f" against {gate.get('incumbent_version') or 'no current version'} {gate.get('incumbent') or ''}".rstrip()


def cmd_evaluate(workspace: Workspace, args: Args) -> str:
    registry = Registry(workspace.require().registry_path)
    for name in args.names:
        registry.get(name)
    params = {"models": list(args.names) or None}
    if args.queue:
        return f"queued evaluation as run {RunStore(workspace.runs_path).enqueue('evaluate', params=params)}"
    return _finished(_run_in_foreground(workspace, "evaluate", params, "evaluate"))


def _run_in_foreground(workspace: Workspace, task: str, params: dict, description: str) -> dict:
    """Run a task here and now, with a terminal bar of its progress; the finished run."""
    from m5ops.orchestration.jobs import run_task, start_run

    run_id = start_run(workspace, task, params)
    with terminal_bar(RunStore(workspace.runs_path), run_id, description):
        return run_task(workspace, task, params, run_id=run_id)


def _finished(run: dict) -> str:
    """One line about a finished run; a run that did not succeed is RunFailed (exit 1)."""
    if run["status"] != "succeeded":
        raise RunFailed(failed_run_line(run))
    return f"run {run['id']} succeeded: {run['output']}"


def cmd_pause(workspace: Workspace, args: Args) -> str:
    management.set_active(workspace.require(), args.name, False)
    return f"paused {args.name}"


def cmd_resume(workspace: Workspace, args: Args) -> str:
    management.set_active(workspace.require(), args.name, True)
    return f"resumed {args.name}"


def cmd_delete(workspace: Workspace, args: Args) -> str:
    management.delete_model(workspace.require(), args.name)
    return f"deleted {args.name}; its runs, metrics and executed notebooks stay"


def cmd_runs(workspace: Workspace, args: Args):
    runs = RunStore(workspace.require().runs_path).runs(limit=args.limit)
    if args.json:
        return runs
    live = set(Registry(workspace.registry_path).models())
    rows = [{"id": r["id"], "task": r["task"], "model": _model_label(r.get("model"), live), "trigger": r["trigger"],
             "status": r["status"], "started": r.get("started_at") or "-", "error": (r.get("error") or "")[:60]}
            for r in runs]
    return pd.DataFrame(rows).to_string(index=False) if rows else "no runs"


def _model_label(model: str | None, live: set[str]) -> str:
    """A model name, marked when the model has been deleted."""
    if not model:
        return "-"
    return model if model in live else f"{model} (deleted)"


def cmd_metrics(workspace: Workspace, args: Args):
    if args.model:
        registry = Registry(workspace.require().registry_path)
        if args.model not in registry.deleted():
            registry.get(args.model)  # refuses an unknown model, listing the known ones
    source = None if args.source == "all" else args.source
    level = _metric_level(args.level)
    history = MetricStore(workspace.require().runs_path).history(model=args.model, source=source, level=level)
    if args.json:
        return [_json_row(_metric_record(row)) for row in history.to_dict("records")]
    if history.empty:
        return "no metrics yet: models are evaluated once they have a version ('m5ops tick')"
    return "\n\n".join(f"{name}:\n" + _metrics_text(history[history["source"] == name], level)
                       for name in ("backtest", "live") if (history["source"] == name).any())


def _metric_level(level: str) -> str:
    """A level of the metrics history ('all', '1'..'12'), or a ParameterError naming the choices."""
    if str(level) not in METRIC_LEVELS:
        raise ParameterError(f"--level {level!r} is not a level; use 'all' or a WRMSSE level 1-12 "
                             "(1 total, 3 store, 9 store x department, 12 item x store)")
    return str(level)


def _json_row(row: dict) -> dict:
    """A history row for --json: no NaN or inf (such a value is null, with its reason as ``note``)."""
    plain = {key: None if value is pd.NA or isinstance(value, float) and not math.isfinite(value) else value
             for key, value in row.items()}
    notes = [format_score(row["metric"], row["value"])] if plain["value"] is None else []
    notes += [excluded_note(plain["excluded"])] if plain.get("excluded") else []
    return {**plain, "note": "; ".join(notes)} if notes else plain


def _metrics_text(history: pd.DataFrame, level: str) -> str:
    """One line per (day, model): each metric formatted (n/a with its reason), the left-out note last."""
    history = history.assign(text=[format_score(m, v) for m, v in zip(history["metric"], history["value"])])
    index = ["sim_date", "model"] + (["version", "issue_day", "horizon"] if (history["source"] == "live").any() else [])
    table = history.pivot_table(index=index, columns="metric", values="text", aggfunc="last")
    left_out = history[history["metric"] == LEVELLED_METRIC].set_index(index)["excluded"]
    table["note"] = [excluded_note(None if pd.isna(n) else int(n)) for n in left_out.reindex(table.index)]
    title = f"WRMSSE at {level_title(level)}" if level != OVERALL else "metrics, overall"
    return f"{title}\n{table.to_string()}"


def _metric_record(row: dict) -> dict:
    """A metrics row for --json: horizon and issue day only on live rows (0 means nothing on a backtest)."""
    if row["source"] != "live":
        row.pop("horizon"), row.pop("issue_day")
    return row

