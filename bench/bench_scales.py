"""The daily update of the WRMSSE scale sums with 1 vs 5 years of history, at the full M5 shape.

    .venv/bin/python bench/bench_scales.py            # 30,490 series, 11 timed updates each, ~3 min
    .venv/bin/python bench/bench_scales.py --quick    # 3,049 series, 3 timed updates each

Two day stores of the same synthetic series (``generate``, the full M5 shape) hold 365 and
1,825 days; each gets its scale state as ``init`` builds it (``build_scales``). Then days arrive
in both, alternately (each going first in turn, so machine noise hits both alike): the day is
appended to the store (not timed) and the arrival's hook, ``current_scales`` (load the state,
check it against the stored last day, fold in the new day over all 42,840 nodes of the 12
levels, save it atomically), is timed. Target: median 5y / median 1y <= 1.3 (a day's cost does
not grow with history). For contrast, the repair path that rebuilds the state from the whole
store (what a missing state costs) is timed once in each.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import peak_rss_bytes, gib, print_table, summarise, timed, verdict

from m5ops.data.store import DayStore
from m5ops.data.synthetic import generate
from m5ops.evaluation.hierarchy import Hierarchy
from m5ops.pipeline.scales import build_scales, current_scales
from m5ops.stores.layout import Workspace

TARGET_RATIO = 1.3
YEARS = (1, 5)
FULL_SERIES = 30_490


def make_store(root: Path, data, days: int) -> tuple[Workspace, DayStore, float]:
    """A workspace folder whose store holds days 1..``days``, with its scale state; the build's seconds."""
    workspace = Workspace(root / f"history-{days}")
    store = DayStore(workspace.data_dir)
    store.create(data.series, data.calendar)
    for day in range(1, days + 1):
        store.append_day(day, data.sales[:, day - 1], data.prices[:, day - 1])
    seconds, _ = timed(build_scales, workspace, data.series, data.sales[:, :days], 1)
    return workspace, store, seconds


def arrive(workspace: Workspace, store: DayStore, data) -> float:
    """Append the next day (not timed), then time the scale update the arrival makes."""
    day = store.last_day() + 1
    store.append_day(day, data.sales[:, day - 1], data.prices[:, day - 1])
    seconds, state = timed(current_scales, workspace, store)
    assert state.last_day == day
    return seconds


def rebuild(workspace: Workspace, store: DayStore) -> float:
    """Seconds of the repair path: no state, so it is rebuilt from every stored day."""
    workspace.scales_path.unlink()
    return timed(current_scales, workspace, store)[0]


def main() -> None:
    """Build both stores, time alternating updates, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,049 series, 3 timed updates")
    parser.add_argument("--series", type=int, default=None, help=f"number of series (default {FULL_SERIES:,})")
    parser.add_argument("--updates", type=int, default=None, help="timed updates per store")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", default=None, help="parent folder of the temporary stores (default: system temp)")
    args = parser.parse_args()
    n_series = args.series or (FULL_SERIES // 10 if args.quick else FULL_SERIES)
    updates = args.updates or (3 if args.quick else 11)
    started = time.perf_counter()
    data = generate(n_series=n_series, n_days=365 * YEARS[-1] + updates + 1, seed=args.seed)
    print(f"generated {n_series:,} series x {data.sales.shape[1]} days in {time.perf_counter() - started:.1f} s; "
          f"{Hierarchy.of(data.series).n_nodes:,} nodes in the 12 levels", flush=True)
    root = Path(tempfile.mkdtemp(prefix="m5ops-bench-scales-", dir=args.dir))
    try:
        stores = {years: make_store(root, data, 365 * years) for years in YEARS}
        for workspace, store, _ in stores.values():
            arrive(workspace, store, data)  # warm-up: imports and first-call caches, not timed
        times = {years: [] for years in YEARS}
        for i in range(updates):
            for years in YEARS if i % 2 == 0 else YEARS[::-1]:  # alternate which goes first
                times[years].append(arrive(*stores[years][:2], data))
        rows = []
        for years, (workspace, store, build_s) in stores.items():
            stats = summarise(times[years])
            rows.append({"history": f"{years}y", "stored_days": store.last_day(), "series": store.n_series(),
                         "init_build_s": build_s, "update_median_s": stats["median"], "min_s": stats["min"],
                         "max_s": stats["max"], "n": stats["n"], "rebuild_s": rebuild(workspace, store),
                         "state_MB": workspace.scales_path.stat().st_size / 1e6})
        print_table(rows, title="Daily update of the WRMSSE scale sums (current_scales after a day arrives)")
        ratio = rows[1]["update_median_s"] / rows[0]["update_median_s"]
        print(f"\nratio 5y/1y of the median update: {ratio:.2f}  (target <= {TARGET_RATIO}: "
              f"{verdict(ratio <= TARGET_RATIO)}); of the fastest: {rows[1]['min_s'] / rows[0]['min_s']:.2f}; "
              f"rebuild from the store 5y/1y: {rows[1]['rebuild_s'] / rows[0]['rebuild_s']:.2f} (grows, as it must)")
        print(f"peak RSS of this process: {gib(peak_rss_bytes()):.2f} GiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
