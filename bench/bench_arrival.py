"""Time of one day's arrival (store + features) with 1 year vs 5 years of history in the store.

    .venv/bin/python bench/bench_arrival.py            # 1,400 series, 11 timed arrivals each
    .venv/bin/python bench/bench_arrival.py --quick    # 140 series, 3 timed arrivals each
    .venv/bin/python bench/bench_arrival.py --profile  # then the top functions of 3 more 5-year arrivals

Two synthetic workspaces with the same series, one storing 365 days and one 1,825, are made by
``init_workspace`` with no held-back days, so every arrival goes the ``arrive_next_day`` path of a
simulated day: read the recent history, simulate, append the day, build its features. Arrivals
alternate between the two workspaces, each going first in turn (so machine noise hits both
alike); the median of each and the ratio 5y/1y are printed. Target: ratio <= 1.3 (an arrival's cost does not grow with history).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import print_table, summarise, timed, verdict

from m5ops.pipeline.arrival import arrive_next_day
from m5ops.data.feature_store import FeatureStore
from m5ops.data.store import DayStore
from m5ops.pipeline.workspace_init import InitOptions, init_workspace

TARGET_RATIO = 1.3
YEARS = (1, 5)
PROFILED = 3


def make_workspace(root: Path, days: int, items: int, seed: int):
    """A synthetic workspace storing ``days`` days and holding none back; (workspace, init seconds)."""
    options = InitOptions(items=items, days=days, start_day=days, seed=seed, progress=False)
    return timed(init_workspace, root / f"history-{days}", options)[::-1]


def main() -> None:
    """Build both workspaces, time alternating arrivals, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="140 series, 3 timed arrivals")
    parser.add_argument("--items", type=int, default=None, help="items per department (x 7 depts x 10 stores series)")
    parser.add_argument("--arrivals", type=int, default=None, help="timed arrivals per workspace")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="then profile 3 more 5-year arrivals")
    parser.add_argument("--dir", default=None, help="parent folder of the temporary workspaces (default: system temp)")
    args = parser.parse_args()
    items = args.items or (2 if args.quick else 20)
    arrivals = args.arrivals or (3 if args.quick else 11)

    root = Path(tempfile.mkdtemp(prefix="m5ops-bench-arrival-", dir=args.dir))
    try:
        workspaces, init_seconds = {}, {}
        for years in YEARS:
            workspaces[years], init_seconds[years] = make_workspace(root, 365 * years, items, args.seed)
        for ws in workspaces.values():
            arrive_next_day(ws)  # warm-up: imports and first-call caches, not timed
        times = {years: [] for years in YEARS}
        for i in range(arrivals):
            for years in YEARS if i % 2 == 0 else YEARS[::-1]:  # alternate which goes first
                times[years].append(timed(arrive_next_day, workspaces[years])[0])
        rows = []
        for years, ws in workspaces.items():
            store = DayStore(ws.data_dir)
            stats = summarise(times[years])
            rows.append({"history": f"{years}y", "stored_days": len(store.stored_days()),
                         "series": store.n_series(), "init_s": init_seconds[years],
                         "arrival_median_s": stats["median"], "min_s": stats["min"], "max_s": stats["max"],
                         "n": stats["n"], "feature_days": len(FeatureStore(ws.features_dir).stored_days())})
        print_table(rows, title="Arrival of one simulated day (arrive_next_day: simulate, store, features)")
        ratio = rows[1]["arrival_median_s"] / rows[0]["arrival_median_s"]
        print(f"\nratio 5y/1y of the median arrival: {ratio:.2f}  (target <= {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)}); "
              f"of the fastest: {rows[1]['min_s'] / rows[0]['min_s']:.2f}")
        if args.profile:  # extra arrivals, not timed: the profiler's overhead would bias the ratio
            profiler = cProfile.Profile()
            for _ in range(PROFILED):
                profiler.runcall(arrive_next_day, workspaces[YEARS[-1]])
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
            print(f"\nprofile of {PROFILED} more 5-year arrivals (not in the timings):\n{out.getvalue()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
