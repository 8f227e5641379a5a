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
from m5ops.data.synthetic import generate
from m5ops.errors import WorkspaceError
from m5ops.pipeline.lifecycle import register_default_models
from m5ops.stores.layout import Workspace, WorkspaceConfig

log = logging.getLogger("m5ops.init")
DEFAULT_HOLDBACK_DAYS = 56
MIN_STORED_DAYS = 2 * HORIZON + 56  # a test window plus enough history for every feature
MAX_TEST_DAYS = 2 * HORIZON


@dataclass
class InitOptions:
    """What ``init`` was asked for."""

    source: str = "synthetic"
    m5_dir: str | None = None
    start_day: int | None = None
    subset: dict = field(default_factory=dict)
    items: int | None = None
    days: int | None = None
    seed: int = 0
    test_days: int = HORIZON
    outputs: str | None = None
    progress: bool = True


def init_workspace(home: Path | str, options: InitOptions, force: bool = False) -> Workspace:
    """Create the workspace at ``home``; refuses an existing one unless ``force``."""
    final = Workspace(home)
    check_options(options)
    _check_target(final, force)
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


def check_options(options: InitOptions) -> None:
    """WorkspaceError naming the option and what to pass, before anything is read or written."""
    for flag, value in (("--items", options.items), ("--days", options.days), ("--test-days", options.test_days)):
        if value is not None and value < 1:
            raise WorkspaceError(f"{flag} {value} must be a whole number of at least 1 (leave it out for the default)")
    if options.test_days > MAX_TEST_DAYS:
        raise WorkspaceError(f"--test-days {options.test_days} is longer than {MAX_TEST_DAYS} days; M5's test window"
                             f" is {HORIZON} days (the default)")
    if options.seed < 0:
        raise WorkspaceError(f"--seed {options.seed} must be 0 or more")
    if options.source == "synthetic":
        _check_synthetic_subset(options.subset)
    if options.outputs and Path(options.outputs).exists() and not Path(options.outputs).is_dir():
        raise WorkspaceError(f"--outputs {options.outputs} is a file; pass a folder for the executed notebooks")


def _check_synthetic_subset(subset: dict) -> None:
    """The synthetic generator makes whole stores: refuse other subsets and unknown stores."""
    other = sorted(key for key in subset if key != "stores")
    if other:
        raise WorkspaceError(f"--{other[0]} applies to real M5 files (--source m5); the synthetic data takes"
                             " --stores, --items (per department) and --days")
    unknown = sorted(set(subset.get("stores") or ()) - set(STORES))
    if unknown:
        raise WorkspaceError(f"unknown store {unknown[0]!r}; M5's stores are {', '.join(STORES)}")


def _check_target(workspace: Workspace, force: bool) -> None:
    """Refuse to overwrite an existing workspace (unless forced) or a folder that is not one."""
    home = workspace.home
    if workspace.exists() and not force:
        raise WorkspaceError(f"a workspace already exists at {home}; pass --force to replace it")
    if home.exists() and any(home.iterdir()) and not workspace.exists():
        raise WorkspaceError(f"{home} is a non-empty folder that is not an m5ops workspace; choose another --home")


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
    stores = options.subset.get("stores")
    return generate(options.items or 3, n_days=options.days or 1941, seed=options.seed,
                    **({"stores": stores} if stores else {}))


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
    """Source files, store, features, held-back days, models; the config last."""
    bar = (lambda it, desc: tqdm(it, desc=desc, unit="day", leave=False)) if options.progress else (lambda it, desc: it)
    write_m5_files(data, workspace.source_dir)
    stored = data.day_slice(data.first_day, start_day)
    store = DayStore(workspace.data_dir)
    store.create(data.series, data.calendar)
    store.append_dataset(stored, progress=lambda it: bar(it, "store"))
    FeatureStore(workspace.features_dir).build_all(stored, _indexed(data.calendar), progress=lambda it: bar(it, "features"))
    if start_day < data.last_day:
        Holdback(workspace.holdback_path).write(data.day_slice(start_day + 1, data.last_day))
    register_default_models(workspace)
    workspace.write_config(WorkspaceConfig(
        source=options.source, seed=options.seed, test_days=options.test_days, start_day=start_day,
        m5_dir=str(Path(options.m5_dir).resolve()) if options.m5_dir else None,
        subset={**options.subset, "items": options.items, "days": options.days},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        outputs_dir=str(Path(options.outputs).resolve()) if options.outputs else None,
    ))


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
