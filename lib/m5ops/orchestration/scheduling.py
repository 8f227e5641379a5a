"""When the runner ticks: its settings, the ``schedule`` job, and whether a tick was missed.

Wall-clock mode ticks once a day at ``--at`` (local time); demo mode ticks every
``--day-seconds`` seconds. After downtime, the last missed tick runs once, right at start (the
seed's catch-up): in wall-clock mode when the last tick is older than the latest ``--at`` time,
in demo mode when more than ``day_seconds`` passed since it. A workspace whose runner never
started has missed nothing.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import schedule

from m5ops.errors import RunnerError

_AT = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass
class RunnerSettings:
    """How the runner ticks, retries, times out and stops; checked when made."""

    at: str = "02:00"
    day_seconds: float | None = None
    retries: int = 1
    retry_delay_s: float = 5.0
    timeout_s: float = 3600.0
    grace_s: float = 30.0
    poll_s: float = 0.2
    beat_s: float = 2.0
    niceness: int = 10
    on_alert: str | None = None
    alert_every_s: float = 5.0
    workers: int = 2
    executor: str = "local"
    scheduler: str | None = None

    def __post_init__(self):
        """Refuse settings that cannot work, saying what to pass instead."""
        if not isinstance(self.at, str) or not _AT.match(self.at):
            raise RunnerError(f"--at {self.at!r} is not a time of day: use HH:MM on the 24-hour clock, e.g. --at 02:00")
        if self.day_seconds is not None and not self.day_seconds > 0:
            raise RunnerError(f"--day-seconds {self.day_seconds} is not a positive number of seconds: use e.g."
                              " --day-seconds 10, or leave it out to tick once a day at --at")
        if self.retries < 0:
            raise RunnerError(f"--retries {self.retries} is negative: use 0 (never retry) or more, e.g. --retries 1")
        for flag, value in (("--timeout", self.timeout_s), ("--poll", self.poll_s), ("--beat", self.beat_s)):
            if not value > 0:
                raise RunnerError(f"{flag} {value} is not a positive number of seconds, e.g. {flag} 3600")
        if not (isinstance(self.niceness, int) and 0 <= self.niceness <= 19):
            raise RunnerError(f"--nice {self.niceness} is not a niceness from 0 (as the runner) to 19 (lowest"
                              " priority): use e.g. --nice 10")
        if not (isinstance(self.workers, int) and not isinstance(self.workers, bool) and self.workers >= 1):
            raise RunnerError(f"--workers {self.workers} is not a number of lanes: use 2 (the default: one lane for"
                              " trainings, one for the rest), more for trainings of several models at once, or 1"
                              " to run everything in one lane, one run at a time")
        if self.executor not in ("local", "dask") or self.executor == "dask" and not self.scheduler:
            raise RunnerError(f"--executor {self.executor!r} needs to be local (the default), or dask with"
                              " --scheduler tcp://HOST:8786 (start one with 'dask scheduler')")
        for flag, value in (("--retry-delay", self.retry_delay_s), ("--grace", self.grace_s)):
            if value < 0:
                raise RunnerError(f"{flag} {value} is negative: use 0 or more seconds, e.g. {flag} 5")

    @classmethod
    def from_args(cls, args) -> "RunnerSettings":
        """Settings from parsed CLI arguments (flags a parser lacks keep their defaults)."""
        given = {"at": "at", "day_seconds": "day_seconds", "retries": "retries", "timeout_s": "timeout",
                 "retry_delay_s": "retry_delay", "grace_s": "grace", "niceness": "nice", "on_alert": "on_alert",
                 "workers": "workers", "executor": "executor", "scheduler": "scheduler"}
        return cls(**{field: getattr(args, flag) for field, flag in given.items()
                      if getattr(args, flag, None) is not None})

    def job_settings(self, executor=None):
        """What each single run needs to know (a ``jobs.JobSettings``): timeout, niceness, where; retries are the runner's."""
        from m5ops.orchestration.jobs import JobSettings  # late: importing jobs imports papermill

        where = {"executor": executor} if executor is not None else {}
        return JobSettings(timeout_s=self.timeout_s, niceness=self.niceness, **where)

    def describe(self) -> str:
        """The schedule in words: 'daily at 02:00' or 'every 10 s (demo)'."""
        return f"every {self.day_seconds:g} s (demo)" if self.day_seconds else f"daily at {self.at}"

    def describe_lanes(self) -> str:
        """The lanes in words: '1 for trainings, 1 for the rest'."""
        if self.workers == 1:
            return "one for everything, one run at a time"
        return f"{self.workers - 1} for trainings, 1 for the rest"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The runner's options, for ``m5ops runner`` and ``runner/run_runner.py`` (cheap: no papermill import)."""
    parser.add_argument("--at", default="02:00", help="wall-clock time of the daily tick, HH:MM (local time)")
    parser.add_argument("--day-seconds", type=float, help="demo mode: one simulated day every N seconds")
    parser.add_argument("--retries", type=int, default=1, help="retries of a failing run")
    parser.add_argument("--retry-delay", type=float, default=5.0, help="seconds before a retry")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before a task is killed")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds the current run gets to finish after SIGINT/SIGTERM")
    parser.add_argument("--nice", type=int, default=10,
                        help="niceness of task processes and their kernels, 0-19 (default 10: a training"
                             " leaves the CPU to the dashboard and other interactive work)")
    parser.add_argument("--workers", type=int, default=2,
                        help="lanes that carry out runs side by side (default 2: one for trainings, one for the"
                             " rest, so a short run never waits behind a training; N: N-1 training lanes;"
                             " 1: one run at a time)")
    parser.add_argument("--executor", choices=("local", "dask"), default="local",
                        help="where runs execute: local (forked processes here, the default) or dask (the workers"
                             " of the cluster at --scheduler; the workspace must be on storage they all see)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="the Dask scheduler, with --executor dask")
    parser.add_argument("--on-alert", metavar="CMD",
                        help="shell command run for each raised or cleared alert, the alert as JSON on its stdin")
    return parser


def build_scheduler(settings: RunnerSettings, tick) -> schedule.Scheduler:
    """A scheduler with one job: ``tick`` daily at ``settings.at``, or every ``day_seconds``."""
    scheduler = schedule.Scheduler()
    if settings.day_seconds:
        scheduler.every(settings.day_seconds).seconds.do(tick)
    else:
        scheduler.every().day.at(settings.at).do(tick)
    return scheduler


def latest_slot(at: str, now: datetime) -> datetime:
    """The latest daily ``at`` time (local) that is not after ``now`` (an aware local datetime)."""
    hour, minute = (int(part) for part in at.split(":"))
    slot = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return slot if slot <= now else slot - timedelta(days=1)


def missed_tick(settings: RunnerSettings, last: datetime | None, now: datetime) -> bool:
    """Whether a tick fell due while no runner ran, given the last tick (or runner start) ``last``."""
    if last is None:
        return False
    if settings.day_seconds:
        return (now - last).total_seconds() > settings.day_seconds
    return last < latest_slot(settings.at, now)


def next_run_utc(scheduler: schedule.Scheduler) -> str | None:
    """When the scheduler ticks next, as ISO 8601 UTC (schedule keeps naive local times)."""
    moment = scheduler.next_run
    return moment.astimezone().astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None
