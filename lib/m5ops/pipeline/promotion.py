"""The promotion rule: a challenger replaces production when its live WRMSSE is clearly better.

Live WRMSSE is scored per issue: when the 28-day window of the forecast a model issued on day
``i`` is complete, ``runs.db`` gets its row (``source='live'``, ``metric='wrmsse'``,
``level='all'``, ``horizon=0``, ``issue_day=i``). The rule compares a challenger with
production on the last ``windows`` issue days both have scored (the same windows for both),
and promotes when the challenger's mean is lower than production's by at least ``margin``
(5% by default): the margin keeps two models of equal skill from trading places every day.
Windows are a model's, whichever of its versions issued them: with weekly retraining no single
version lives long enough to complete seven windows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from m5ops.stores.layout import Workspace
from m5ops.stores.metrics import MetricStore
from m5ops.stores.registry_format import version_number


@dataclass(frozen=True)
class LiveRecord:
    """A model's live WRMSSE over its last complete issue windows."""

    windows: tuple[int, ...]  # issue days, oldest first
    mean: float | None

    def as_dict(self) -> dict:
        return {"windows": len(self.windows), "issue_days": list(self.windows), "wrmsse": self.mean}


@dataclass(frozen=True)
class Challenge:
    """A challenger that beats production on the same complete windows by at least the margin."""

    challenger: str
    production: str
    windows: tuple[int, ...]
    challenger_wrmsse: float
    production_wrmsse: float
    margin: float

    @property
    def improvement(self) -> float:
        """How much lower the challenger's mean WRMSSE is, as a fraction of production's."""
        return 1 - self.challenger_wrmsse / self.production_wrmsse

    def reason(self) -> str:
        return (f"live WRMSSE over the last {len(self.windows)} complete issue windows (issued days"
                f" {self.windows[0]}..{self.windows[-1]}): {self.challenger} {self.challenger_wrmsse:.4g} against"
                f" {self.production} {self.production_wrmsse:.4g}, {self.improvement:.1%} better"
                f" (the rule asks {self.margin:.0%})")

    def evidence(self) -> dict:
        return {"metric": "live wrmsse", "issue_days": list(self.windows), "challenger": self.challenger,
                "challenger_wrmsse": self.challenger_wrmsse, "production": self.production,
                "production_wrmsse": self.production_wrmsse, "improvement": self.improvement, "margin": self.margin}


def live_windows(workspace: Workspace, models: list[str] | None = None) -> dict[str, dict[int, float]]:
    """Per model, issue day -> live WRMSSE of that issue's complete window (finite scores only)."""
    frame = MetricStore(workspace.runs_path).live_of("wrmsse", horizon=0)
    if models is not None:
        frame = frame[frame["model"].isin(models)]
    return {name: _by_issue(rows) for name, rows in frame.groupby("model")}


def _by_issue(rows: pd.DataFrame) -> dict[int, float]:
    """One score per issue day: the newest version's where a day was issued twice."""
    rows = rows.assign(number=rows["version"].map(version_number)).sort_values(["issue_day", "number"])
    last = rows.drop_duplicates("issue_day", keep="last")
    return {int(day): float(value) for day, value in zip(last["issue_day"], last["value"])
            if value is not None and math.isfinite(value)}


def recent(scores: dict[int, float], windows: int, days: set[int] | None = None) -> LiveRecord:
    """The last ``windows`` issue days of ``scores`` (among ``days``, if given) and their mean."""
    chosen = sorted(day for day in scores if days is None or day in days)[-windows:]
    mean = sum(scores[day] for day in chosen) / len(chosen) if chosen else None
    return LiveRecord(tuple(chosen), mean)


def challenge(production: str, challenger: str, scores: dict[str, dict[int, float]], windows: int,
              margin: float) -> Challenge | None:
    """The challenge of one challenger on the windows both scored; None if too few or not better enough."""
    mine, theirs = scores.get(challenger, {}), scores.get(production, {})
    common = set(mine) & set(theirs)
    if len(common) < windows:
        return None
    ours, prod = recent(mine, windows, common), recent(theirs, windows, common)
    if not (prod.mean and prod.mean > 0) or ours.mean > prod.mean * (1 - margin):
        return None
    return Challenge(challenger, production, ours.windows, ours.mean, prod.mean, margin)


def best_challenge(production: str, challengers: list[str], scores: dict[str, dict[int, float]], windows: int,
                   margin: float) -> Challenge | None:
    """Of the challengers that pass the rule, the one with the lowest live WRMSSE (then by name)."""
    passed = [found for name in challengers if name != production
              and (found := challenge(production, name, scores, windows, margin)) is not None]
    return min(passed, key=lambda c: (c.challenger_wrmsse, c.challenger), default=None)
