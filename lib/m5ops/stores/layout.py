"""Where a workspace keeps its parts, and its small immutable configuration."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from m5ops.errors import WorkspaceError

CONFIG_FORMAT = 1
# Issue days of forecasts kept for models that do not serve (the serving model keeps all): two
# issue windows, so every challenger's issue is scored over its whole window before it goes.
DEFAULT_KEEP_FORECASTS = 56


def default_home() -> Path:
    """``$M5OPS_HOME``, else ``./workspace``."""
    return Path(os.environ.get("M5OPS_HOME") or "workspace")


@dataclass
class WorkspaceConfig:
    """How a workspace was made; written once by ``init``."""

    source: str
    seed: int = 0
    test_days: int = 28
    start_day: int | None = None
    m5_dir: str | None = None
    subset: dict = field(default_factory=dict)
    created: str = ""
    outputs_dir: str | None = None
    keep_forecasts: int | None = DEFAULT_KEEP_FORECASTS  # None: every issue of every model is kept
    format: int = CONFIG_FORMAT


class Workspace:
    """The folder layout of one pipeline instance; every path anyone needs comes from here."""

    def __init__(self, home: Path | str):
        self.home = Path(home).resolve()

    config_path = property(lambda self: self.home / "config.json")
    data_dir = property(lambda self: self.home / "data")
    features_dir = property(lambda self: self.home / "features")
    holdback_path = property(lambda self: self.home / "data" / "holdback.parquet")
    scales_path = property(lambda self: self.home / "data" / "scales.npz")  # running WRMSSE scale sums
    source_dir = property(lambda self: self.home / "source")
    forecasts_dir = property(lambda self: self.home / "forecasts")
    models_dir = property(lambda self: self.home / "models")
    registry_path = property(lambda self: self.home / "registry.json")
    runs_path = property(lambda self: self.home / "runs.db")
    logs_dir = property(lambda self: self.home / "logs")
    lock_path = property(lambda self: self.home / "runner.lock")

    @property
    def outputs_dir(self) -> Path:
        """Executed notebooks: ``$M5OPS_OUTPUTS``, else the folder chosen at init, else ``<home>/outputs``."""
        chosen = os.environ.get("M5OPS_OUTPUTS") or (self.exists() and self.config().outputs_dir)
        return Path(chosen or self.home / "outputs").resolve()

    def exists(self) -> bool:
        """True once ``init`` has finished (the config is the last thing it writes)."""
        return self.config_path.is_file()

    def require(self) -> "Workspace":
        """Self, or a WorkspaceError telling how to make one."""
        if not self.exists():
            raise WorkspaceError(
                f"no workspace at {self.home}: run 'm5ops --home {self.home} init' first"
            )
        return self

    def config(self) -> WorkspaceConfig:
        """The configuration written by ``init``."""
        self.require()
        try:
            raw = json.loads(self.config_path.read_text())
            return WorkspaceConfig(**raw)
        except (json.JSONDecodeError, TypeError) as exc:
            raise WorkspaceError(
                f"{self.config_path} is not a valid workspace config ({exc}); "
                "re-create the workspace with 'm5ops init --force'"
            ) from exc

    def write_config(self, config: WorkspaceConfig) -> None:
        """Write the configuration atomically (it marks the workspace as complete)."""
        from m5ops.stores.atomic import write_text_atomic

        write_text_atomic(self.config_path, json.dumps(asdict(config), indent=2) + "\n")
