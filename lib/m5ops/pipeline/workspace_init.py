"""``m5ops init``: a new workspace from real M5 files or the embedded synthetic default.

The workspace is assembled in a sibling temporary folder and moved into place at the end, so a
failed or interrupted init leaves no half-made workspace (and, with ``force``, the old one
stays until the new one is complete).
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from m5ops.stores.holdback import Holdback
from m5ops.data.feature_store import FeatureStore
from m5ops.data.m5files import load_m5, write_m5_files
from m5ops.data.schema import HORIZON, STORES, M5Dataset, day_label
from m5ops.data.store import DayStore
from m5ops.data.synthetic import SIZES, generate
from m5ops.errors import ParameterError, WorkspaceError
from m5ops.pipeline.lifecycle import register_default_models
from m5ops.pipeline.scales import build_scales
from m5ops.stores.rundb import open_rundb
from m5ops.stores.layout import DEFAULT_KEEP_FORECASTS, Workspace, WorkspaceConfig

log = logging.getLogger("m5ops.init")
DEFAULT_HOLDBACK_DAYS = 56
MIN_STORED_DAYS = 2 * HORIZON + 56  # a test window plus enough history for every feature
MAX_TEST_DAYS = 2 * HORIZON


@dataclass
class InitOptions:
    """What ``init`` was asked for.

    ``size`` names a synthetic shape (``synthetic.SIZES``: "demo", 210 series, the default;
    "full", M5's 30,490 series); ``items`` (per department) replaces it, so the two are not
    passed together. ``days`` and ``subset["stores"]`` refine either: fewer days, fewer stores.
    """

    source: str = "synthetic"
    m5_dir: str | None = None
    start_day: int | None = None
    subset: dict = field(default_factory=dict)
    size: str | None = None
    items: int | None = None
    days: int | None = None
    seed: int = 0
    test_days: int = HORIZON
    outputs: str | None = None
    keep_forecasts: int | None = DEFAULT_KEEP_FORECASTS  # issue days kept for non-serving models; None: all
    progress: bool = True


def init_workspace(home: Path | str, options: InitOptions, force: bool = False) -> Workspace:
    """Create the workspace at ``home``; refuses an existing one unless ``force``."""
    final = Workspace(home)
    check_options(options)
    _check_target(final, force)
    _check_keep_forecasts(options.keep_forecasts)
    data = _load_source(options)
    start_day = _start_day(data, options)
    staging = Workspace(final.home.with_name(f".{final.home.name}.init-tmp"))
    shutil.rmtree(staging.home, ignore_errors=True)
    staging.home.mkdir(parents=True)
    try:
        _populate(staging, data, start_day, options)
        _swap_into_place(staging.home, final.home)
    except BaseException:
        shutil.rmtree(staging.home, ignore_errors=True)
        raise
    log.info("initialised workspace %s: %d series, stored %s..%s, %d real days held back",
             final.home, data.n_series, day_label(data.first_day), day_label(start_day), data.last_day - start_day)
    return final


_COUNT_FIXES = {
    "--items": "items per department of synthetic data, the first N items of M5 files; or leave it out: "
               "--size demo (210 series) is the default, --size full the whole M5 shape",
    "--days": "days of history; or leave it out for every day (synthetic: 1,941)",
}


def check_options(options: InitOptions) -> None:
    """A ParameterError, before anything is written, for a size or subset that cannot mean what was asked."""
    for flag, value in (("--items", options.items), ("--days", options.days)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ParameterError(f"{flag} {value}: pass a whole number >= 1 ({_COUNT_FIXES[flag]})")
    ignored = [f"--{key}" for key in ("states", "categories", "departments") if options.subset.get(key)]
    if options.source == "synthetic" and ignored:
        raise ParameterError(f"synthetic data takes --stores to narrow it, not {' or '.join(ignored)}; "
                             f"use --stores, or --source m5 with M5 files")
    if options.size is not None:
        _check_size(options)
    if options.test_days < 1 or options.test_days > MAX_TEST_DAYS:
        raise ParameterError(f"--test-days {options.test_days} must lie in 1..{MAX_TEST_DAYS}; M5's test window is"
                             f" {HORIZON} days (the default)")
    if options.seed < 0:
        raise ParameterError(f"--seed {options.seed} must be 0 or more")
    unknown = sorted(set(options.subset.get("stores") or ()) - set(STORES)) if options.source == "synthetic" else []
    if unknown:
        raise ParameterError(f"unknown store {unknown[0]!r}; M5's stores are {', '.join(STORES)}")
    if options.outputs and Path(options.outputs).exists() and not Path(options.outputs).is_dir():
        raise ParameterError(f"--outputs {options.outputs} is a file; pass a folder for the executed notebooks")


def _check_size(options: InitOptions) -> None:
    """``size`` is a known name, for synthetic data, and not given beside ``items``."""
    if options.size not in SIZES:
        raise ParameterError(f"unknown --size {options.size!r}; use one of: {', '.join(SIZES)}")
    if options.source != "synthetic":
        raise ParameterError("--size is for synthetic data; M5 files have their own size: "
                             "narrow them with --stores, --items N or --days N instead")
    if options.items is not None:
        raise ParameterError(f"--size {options.size} and --items {options.items} both set the items; pass one "
                             f"(--items N = N items per department)")


def synthetic_arguments(options: InitOptions) -> dict:
    """``generate``'s arguments: the named size (default "demo"), or ``items``; ``days`` and stores refine it."""
    if options.items is not None:
        arguments = {"n_items_per_dept": options.items, "n_days": SIZES["demo"]["n_days"]}
    else:
        arguments = dict(SIZES[options.size or "demo"])
    if options.days is not None:
        arguments["n_days"] = options.days
    if options.subset.get("stores"):
        arguments["stores"] = options.subset["stores"]
    return {**arguments, "seed": options.seed}


def _check_target(workspace: Workspace, force: bool) -> None:
    """Refuse to overwrite an existing workspace (unless forced) or a folder that is not one."""
    home = workspace.home
    if workspace.exists() and not force:
        raise WorkspaceError(f"a workspace already exists at {home}; pass --force to replace it")
    if home.exists() and any(home.iterdir()) and not workspace.exists():
        raise WorkspaceError(f"{home} is a non-empty folder that is not an m5ops workspace; choose another --home")


def _check_keep_forecasts(days: int | None) -> None:
    """Refuse a retention that would delete an issue before its 28-day window is scored."""
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < HORIZON):
        raise ParameterError(f"--keep-forecasts {days!r} must be a whole number of days >= {HORIZON} (an issue is "
                             f"scored until its {HORIZON}-day window completes), or 'all' to keep every issue")


def _load_source(options: InitOptions) -> M5Dataset:
    """The data set to start from: real M5 files (subset) or a generated one."""
    if options.source == "m5":
        if not options.m5_dir:
            raise WorkspaceError("--source m5 needs --m5-dir DIR (a folder with calendar.csv, sell_prices.csv, sales_train_*.csv)")
        data = load_m5(options.m5_dir, items=options.items, **options.subset)
        if options.days:
            data = data.day_slice(max(data.first_day, data.last_day - options.days + 1), data.last_day)
        return data
    if options.source != "synthetic":
        raise WorkspaceError(f"unknown source {options.source!r}; use 'synthetic' or 'm5'")
    return generate(**synthetic_arguments(options))


def _start_day(data: M5Dataset, options: InitOptions) -> int:
    """The last day stored at init; the real days after it are held back."""
    start = options.start_day or data.last_day - DEFAULT_HOLDBACK_DAYS
    if not data.first_day + MIN_STORED_DAYS - 1 <= start <= data.last_day:
        raise WorkspaceError(
            f"--start-day {start} must lie in {data.first_day + MIN_STORED_DAYS - 1}..{data.last_day} "
            f"(at least {MIN_STORED_DAYS} days stored, and no later than the data's last day {day_label(data.last_day)})"
        )
    return start


def _populate(workspace: Workspace, data: M5Dataset, start_day: int, options: InitOptions) -> None:
    """Source files, store, features, WRMSSE scale sums, held-back days, models; the config last."""
    bar = (lambda it, desc: tqdm(it, desc=desc, unit="day", leave=False)) if options.progress else (lambda it, desc: it)
    write_m5_files(data, workspace.source_dir)
    stored = data.day_slice(data.first_day, start_day)
    store = DayStore(workspace.data_dir)
    store.create(data.series, data.calendar)
    store.append_dataset(stored, progress=lambda it: bar(it, "store"))
    FeatureStore(workspace.features_dir).build_all(stored, _indexed(data.calendar), progress=lambda it: bar(it, "features"))
    build_scales(workspace, stored.series, stored.sales, stored.first_day)
    if start_day < data.last_day:
        Holdback(workspace.holdback_path).write(data.day_slice(start_day + 1, data.last_day))
    register_default_models(workspace)
    open_rundb(workspace.runs_path)  # runs.db with its tables: every later command finds it made
    workspace.write_config(WorkspaceConfig(
        source=options.source, seed=options.seed, test_days=options.test_days, start_day=start_day,
        m5_dir=str(Path(options.m5_dir).resolve()) if options.m5_dir else None,
        subset={**options.subset, "size": _size_name(options), "items": options.items, "days": options.days},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        outputs_dir=str(Path(options.outputs).resolve()) if options.outputs else None,
        keep_forecasts=options.keep_forecasts,
    ))


def _size_name(options: InitOptions) -> str | None:
    """The named size a synthetic workspace was made at (None: custom --items, or M5 files)."""
    if options.source != "synthetic" or options.items is not None:
        return None
    return options.size or "demo"


def _indexed(calendar):
    """The calendar indexed by day number."""
    return calendar.set_index(calendar["day"].astype(int), drop=False)


def _swap_into_place(staging: Path, final: Path) -> None:
    """Move the finished staging folder to its final name, replacing a forced-over workspace."""
    retired = final.with_name(f".{final.name}.old-tmp")
    shutil.rmtree(retired, ignore_errors=True)
    if final.exists():
        final.rename(retired)
    staging.rename(final)
    shutil.rmtree(retired, ignore_errors=True)
