"""The workspace's status, computed in one place for ``m5ops status`` and the dashboard's header."""
from __future__ import annotations

from dataclasses import dataclass

from m5ops.data.schema import day_date, day_label
from m5ops.data.store import DayStore
from m5ops.stores.alerts import AlertStore
from m5ops.stores.holdback import Holdback, held_back_left
from m5ops.stores.layout import Workspace
from m5ops.stores.runner_state import RunnerState
from m5ops.stores.runs import RunStore, run_label
from m5ops.stores.scenarios import ScenarioStore


@dataclass(frozen=True)
class WorkspaceStatus:
    """Simulated today, data size, held-back days left, the runner, what runs and what waits."""

    home: str
    today_day: int
    first_day: int
    series: int
    held_back_left: int
    heartbeat: dict | None
    runner_alive: bool
    schedule: dict
    running: tuple[dict, ...]
    queued: tuple[dict, ...]
    alerts: tuple[dict, ...] = ()  # open ones, oldest first
    scenarios: tuple[str, ...] = ()  # labels of the demand scenarios still to apply to some arriving day

    today = property(lambda self: day_label(self.today_day))
    date = property(lambda self: str(day_date(self.today_day).date()))
    days = property(lambda self: self.today_day - self.first_day + 1)
    rows = property(lambda self: self.days * self.series)
    runner_command = property(lambda self: runner_command(self.home))
    running_labels = property(lambda self: [run_label(r) for r in self.running])
    queued_labels = property(lambda self: [run_label(r) for r in self.queued])

    @property
    def runner_pid(self) -> int | None:
        """The live runner's pid, None when no runner is alive."""
        return self.heartbeat["pid"] if self.heartbeat and self.runner_alive else None

    def as_dict(self) -> dict:
        """The JSON of ``m5ops status --json``."""
        return {
            "home": self.home, "today": self.today, "today_day": self.today_day, "date": self.date,
            "first_day": day_label(self.first_day), "days": self.days, "series": self.series,
            "rows": self.rows, "held_back_days_left": self.held_back_left,
            "runner_alive": self.runner_alive, "runner": self.heartbeat, "schedule": self.schedule,
            "running": self.running_labels, "queued": self.queued_labels,
            "alerts": [{"id": a["id"], "kind": a["kind"], "model": a["model"], "message": a["message"]}
                       for a in self.alerts],
            "scenarios": list(self.scenarios),
            "progress": {r["id"]: {"fraction": r["progress"], "note": r["progress_note"]} for r in self.running},
        }


def runner_command(home) -> str:
    """The command that starts the runner of this workspace."""
    return f"m5ops --home {home} runner"


class StatusReader:
    """Reads the status of one workspace; what cannot change after ``init`` is read once."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace.require()
        self.store = DayStore(workspace.data_dir)
        self.runs = RunStore(workspace.runs_path)
        self.runner = RunnerState(workspace.runs_path)
        self.alerts = AlertStore(workspace.runs_path)
        self.scenarios = ScenarioStore(workspace.runs_path)
        self.n_series = self.store.n_series()
        self.holdback_span = Holdback(workspace.holdback_path).days()

    def read(self, running: list[dict] | None = None, queued: list[dict] | None = None) -> WorkspaceStatus:
        """The status now (``running``/``queued``: runs the caller already read)."""
        today = self.store.last_day()
        beat = self.runner.heartbeat()
        return WorkspaceStatus(
            home=str(self.workspace.home), today_day=today, first_day=self.store.first_day(),
            series=self.n_series, held_back_left=held_back_left(self.holdback_span, today),
            heartbeat=beat, runner_alive=self.runner.alive(beat=beat), schedule=self.runner.state(),
            running=tuple(self.runs.running() if running is None else running),
            queued=tuple(self.runs.queued() if queued is None else queued), alerts=tuple(self.alerts.open()),
            scenarios=tuple(s.label() for s in self.scenarios.upcoming(today)))


def workspace_status(workspace: Workspace) -> WorkspaceStatus:
    """The status of ``workspace`` now."""
    return StatusReader(workspace).read()
