"""Commands on models and their runs: models, kinds, create, train, evaluate, pause, resume, delete, runs, metrics, forecast."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from m5ops.cli.arguments import out_file, positive_int
from m5ops.cli.progress_bar import terminal_bar
from m5ops.data.schema import HORIZON, day_label
from m5ops.errors import ParameterError, RunFailed, WorkspaceError
from m5ops.models import describe_kinds
from m5ops.pipeline import lifecycle as management
from m5ops.pipeline.modeling import WorkspaceData, forecast_matrix, load_current, test_input
from m5ops.stores.atomic import atomic_path
from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import MetricStore
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

    p = sub.add_parser("evaluate", help="evaluate models now")
    p.add_argument("names", nargs="*")
    p.add_argument("--queue", action="store_true", help="ask the running runner to do it")

    p = sub.add_parser("runs", help="recent runs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=positive_int, default=20)

    p = sub.add_parser("metrics", help="the metrics history")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model")

    p = sub.add_parser("forecast", help="the current version's forecast of the test window (M5 layout)")
    p.add_argument("name")
    p.add_argument("--out", required=True, type=out_file)


def cmd_models(workspace: Workspace, args: Args):
    registry = Registry(workspace.require().registry_path)
    models, deleted = registry.models(), registry.deleted()
    if args.json:
        return {"models": models, "deleted": deleted}
    rows = [{"name": n, "kind": m["kind"], "state": "active" if m["schedule"]["active"] else "paused",
             "versions": len(m["versions"]), "current": m.get("current_version") or "-",
             "last_trained": (m["versions"][-1]["sim_date"] if m["versions"] else "-")} for n, m in models.items()]
    return pd.DataFrame(rows).to_string(index=False) if rows else "no models"


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
    params = {"model": args.name, "manual": True}
    if args.queue:
        run_id = RunStore(workspace.runs_path).enqueue("train", model=args.name, params=params)
        return f"queued training of {args.name} as run {run_id}"
    return _finished(_run_in_foreground(workspace, "train", params, f"train {args.name}"))


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
    history = MetricStore(workspace.require().runs_path).history(model=args.model)
    if args.json:
        return history.to_dict("records")
    if history.empty:
        return "no metrics yet: models are evaluated once they have a version ('m5ops tick')"
    return history.pivot_table(index=["sim_date", "model"], columns="metric", values="value").to_string()


def cmd_forecast(workspace: Workspace, args: Args) -> str:
    data = WorkspaceData.open(workspace.require().home)
    loaded = load_current(data, args.name)
    if loaded is None:
        raise WorkspaceError(f"model {args.name!r} has no version yet: train it with 'm5ops train {args.name}'")
    model, version = loaded
    matrix = forecast_matrix(model, test_input(data), len(data.series))
    frame = pd.DataFrame(matrix[:, :HORIZON], columns=[f"F{i}" for i in range(1, matrix.shape[1] + 1)][:HORIZON])
    frame.insert(0, "id", data.series["id"].astype(str).to_numpy())
    from m5ops.stores.atomic import atomic_path

    with atomic_path(Path(args.out)) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")
    start, end = data.split.test_range()
    return f"wrote the {args.name} {version['id']} forecast of {day_label(start)}..{day_label(end)} to {args.out}"
