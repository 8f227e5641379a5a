"""Where a version came from: its data, its parameters, its feature set, the code and the run.

The record a training stores beside its version (``version["lineage"]``), so that any forecast
can be traced to the days and rows it learned from and to the code that made it. The git commit
is read only when the package runs from a checkout; an installed wheel records none.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import subprocess
from pathlib import Path

from m5ops import __version__

log = logging.getLogger("m5ops.pipeline.lineage")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
GIT_TIMEOUT_S = 5.0


def feature_set_hash(features: list[str]) -> str:
    """A short hash of the ordered feature list: two versions share it iff they read the same inputs."""
    return hashlib.sha256(json.dumps(list(features)).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """The package version and, from a git checkout, its commit and whether files were changed."""
    return {"package": __version__, **_git_state(PACKAGE_DIR)}


def _git_state(directory: Path) -> dict:
    """``{"commit", "dirty"}`` of the checkout holding ``directory``; ``{"commit": None}`` outside one."""
    try:
        # tracked here, so not an installed copy that happens to sit inside some checkout (a .venv)
        _git(directory, "ls-files", "--error-unmatch", "__init__.py")
        commit = _git(directory, "rev-parse", "HEAD")
        dirty = bool(_git(directory, "status", "--porcelain", "--untracked-files=no", "--", "."))
    except (OSError, subprocess.SubprocessError) as exc:  # no git, not a checkout (a wheel), or a slow disk
        log.debug("no git commit for %s: %s", directory, exc)
        return {"commit": None}
    return {"commit": commit, "dirty": dirty}


def _git(directory: Path, *args: str) -> str:
    """One git command in ``directory``; raises when it fails."""
    done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                          timeout=GIT_TIMEOUT_S, check=True)
    return done.stdout.strip()


def version_lineage(*, train_range: tuple[int, int], rows: int, params: dict, features: list[str],
                    duration_s: float, run_id: str | None, notebook: str | None, backtest: dict,
                    reason: str = "") -> dict:
    """The lineage record of one trained version."""
    start, end = (int(day) for day in train_range)
    return {"data_cutoff_day": end, "train_start_day": start, "train_days": end - start + 1, "rows": int(rows),
            "params": dict(params), "features": len(features), "feature_set_hash": feature_set_hash(features),
            "code": code_version(), "run_id": run_id, "notebook": notebook, "duration_s": round(duration_s, 3),
            "trained_because": reason or None, "backtest": backtest}
