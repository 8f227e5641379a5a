"""``m5ops check``: every part of a workspace verified, each problem said with how to repair it.

Each store checks itself (the day store its days, the registry its shape, SQLite its file);
this module only asks them and words the repair. Nothing here changes the workspace.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from m5ops.data.feature_store import FeatureStore
from m5ops.data.schema import day_label
from m5ops.data.store import DayStore
from m5ops.errors import M5opsError
from m5ops.models import ForecastModel
from m5ops.stores.layout import Workspace
from m5ops.stores.registry import Registry
from m5ops.stores.runner_state import RunnerState
from m5ops.stores.runs import RunStore, run_label
from m5ops.stores.rundb import open_rundb

INIT_AGAIN = "re-create the workspace with 'm5ops init --force' (or restore the file from a backup)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workspace: which part, what, and what to do."""

    part: str  # days | features | registry | models | runs
    problem: str
    repair: str

    def line(self) -> str:
        """``[days] d_120 is missing: restore it ...``."""
        return f"[{self.part}] {self.problem}: {self.repair}"


def check_workspace(workspace: Workspace) -> list[Problem]:
    """Every problem found in ``workspace``; empty when it is sound."""
    workspace.require()
    return [*_days(workspace), *_features(workspace), *_registry(workspace), *_runs(workspace)]


def check_from_workers(workspace: Workspace, scheduler: str) -> list[Problem]:
    """``m5ops check --scheduler ADDR``: the same check run on every Dask worker, as each one sees the workspace."""
    from m5ops.orchestration.dask_executor import check_on_workers  # late: needs the [dask] extra

    found = check_on_workers(scheduler, str(workspace.home))
    if not found:
        return [Problem("workers", f"the Dask scheduler at {scheduler} has no worker",
                        f"start workers with 'dask worker {scheduler} --nthreads 1 --resources m5ops_run=1'")]
    shared = f"mount the workspace {workspace.home} at the same path on every worker (a shared filesystem)"
    return [Problem("workers", f"worker {worker}: {line}", shared) for worker, lines in sorted(found.items())
            for line in lines]


def as_json(problems: list[Problem]) -> dict:
    """The JSON of ``m5ops check --json``."""
    return {"ok": not problems, "problems": [asdict(p) for p in problems]}


def _days(workspace: Workspace) -> list[Problem]:
    """Every day from the first to the last stored once and readable."""
    store = DayStore(workspace.data_dir)
    if store.last_day() is None:
        return [Problem("days", f"the day store {store.days_dir} holds no day", INIT_AGAIN)]
    found = [Problem("days", f"{day_label(day)} is missing", INIT_AGAIN) for day in store.missing_days()]
    found += [Problem("days", f"{day_label(day)} {why}", INIT_AGAIN) for day, why in store.unreadable_days().items()]
    return found


def _features(workspace: Workspace) -> list[Problem]:
    """Features stored, and readable, for every stored day."""
    store, features = DayStore(workspace.data_dir), FeatureStore(workspace.features_dir)
    days = store.stored_days()
    built = set(features.stored_days())
    rebuild = "run a tick ('m5ops tick'): its arrival rebuilds missing features first"
    found = [Problem("features", f"{day_label(day)} has no features", rebuild) for day in days if day not in built]
    bad = features.unreadable_days([day for day in days if day in built])
    return found + [Problem("features", f"the features of {day_label(day)} are {why}",
                            f"delete {features.day_path(day)}, then {rebuild}") for day, why in bad.items()]


def _registry(workspace: Workspace) -> list[Problem]:
    """The registry readable and valid, and every version's artifact present and loadable."""
    try:
        models = Registry(workspace.registry_path).models()
    except M5opsError as exc:
        return [Problem("registry", str(exc), "fix registry.json by hand or restore it from a backup")]
    found = []
    for name, model in models.items():
        for version in model["versions"]:
            try:
                ForecastModel.load(workspace.home / version["artifact"])
            except (M5opsError, OSError, ValueError) as exc:
                found.append(Problem("models", f"{name} {version['id']} cannot be loaded ({exc})",
                                     f"retrain it with 'm5ops train {name}'"))
    return found


def _runs(workspace: Workspace) -> list[Problem]:
    """``runs.db`` passes SQLite's integrity check, and no run is left running without a live runner."""
    try:
        problems = open_rundb(workspace.runs_path).integrity_problems()
        running = RunStore(workspace.runs_path).running()
        alive = RunnerState(workspace.runs_path).alive()
    except M5opsError as exc:
        return [Problem("runs", str(exc), "move runs.db away (a new empty one is made) or restore it from a backup")]
    found = [Problem("runs", f"integrity check: {text}", "restore runs.db from a backup, or move it away")
             for text in problems]
    if running and not alive:
        found += [Problem("runs", f"run {run_label(run)} is recorded running but no runner is alive",
                          f"start the runner ('m5ops --home {workspace.home} runner'): it marks such runs"
                          " interrupted and kills what they left") for run in running]
    return found
