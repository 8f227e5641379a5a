"""Live scoring of an arrival with 1 year vs 5 years of stored issues in the forecast ledger.

    .venv/bin/python bench/bench_ledger.py            # 1,400 series, 4 models, 11 timed scorings each, ~5 min
    .venv/bin/python bench/bench_ledger.py --quick    # 140 series, 3 timed scorings

One synthetic workspace (``init_workspace``: every day up to d_1941 stored, nothing held back) is
copied twice; the ledger of one gets every default model's issue on each of the 365 days before
d_1941, the other on each of the 1,825 days before it (seeded random values; the ledger's own
``write``, one file per model and issue day). Then ``score_arrival`` of d_1941 (as the arrival
task calls it: the 28 x 4 issues that target the day read by their one row group, point metrics
by horizon, the WRMSSE of the issues whose window the day completes, the rows into runs.db) is
timed in both, alternately (each going first in turn), after one untimed warm-up each; the
read alone (``ForecastLedger.targeting``) is timed the same way. Target: median 5y / median 1y
<= 1.3 (the scoring's cost does not grow with the ledger's length).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import print_table, summarise, timed, verdict

from m5ops.data.schema import HORIZON
from m5ops.data.store import DayStore
from m5ops.pipeline.lifecycle import DEFAULT_MODELS
from m5ops.pipeline.live_scoring import score_arrival
from m5ops.pipeline.workspace_init import InitOptions, init_workspace
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import ForecastLedger, Issue

TARGET_RATIO = 1.3
YEARS = (1, 5)
LAST_DAY = 1941


def fill_ledger(workspace: Workspace, issue_days: range, seed: int) -> tuple[int, float]:
    """Every default model's issue on each of ``issue_days``; (files written, MB on disk)."""
    ledger = ForecastLedger.of(workspace)
    n_series = DayStore(workspace.data_dir).n_series()
    rng = np.random.default_rng(seed)
    written = 0
    for day in issue_days:
        for model in DEFAULT_MODELS:
            values = rng.gamma(0.8, 1.5, size=(n_series, HORIZON)).astype(np.float32)
            ledger.write(Issue(model, "v0001", day, values, ("carried_forward",) * HORIZON, "bench-ledger"))
            written += 1
    mb = sum(p.stat().st_size for p in ledger.root.rglob("*.parquet")) / 1e6
    return written, mb


def main() -> int:
    """Build both workspaces, time alternating scorings, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="140 series, 3 timed scorings")
    parser.add_argument("--items", type=int, default=None, help="items per department (x 7 depts x 10 stores series)")
    parser.add_argument("--repeat", type=int, default=None, help="timed scorings per workspace")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=None, help="parent folder of the temporary workspaces (default: system temp)")
    args = parser.parse_args()
    items = args.items or (2 if args.quick else 20)
    repeat = args.repeat or (3 if args.quick else 11)

    root = Path(tempfile.mkdtemp(prefix="m5ops-bench-ledger-", dir=args.dir))
    try:
        first = init_workspace(root / "ws-1y", InitOptions(items=items, start_day=LAST_DAY, seed=args.seed,
                                                           keep_forecasts=None, progress=False))
        shutil.copytree(first.home, root / "ws-5y")
        workspaces = {1: first, 5: Workspace(root / "ws-5y")}
        store = DayStore(first.data_dir)
        actual, _ = store.read_matrix(LAST_DAY, LAST_DAY)
        actual = actual[:, 0]
        fills = {}
        for years, ws in workspaces.items():
            fill_s, (files, mb) = timed(fill_ledger, ws, range(LAST_DAY - 365 * years, LAST_DAY), args.seed + years)
            fills[years] = {"files": files, "mb": mb, "fill_s": fill_s}
        for ws in workspaces.values():  # warm-up: imports, first-call caches, the runs.db tables
            score_arrival(ws, LAST_DAY, actual, "bench-ledger")
        score_times = {years: [] for years in YEARS}
        read_times = {years: [] for years in YEARS}
        scopes = {}
        for i in range(repeat):
            for years in YEARS if i % 2 == 0 else YEARS[::-1]:  # alternate which goes first
                ws = workspaces[years]
                seconds, scores = timed(score_arrival, ws, LAST_DAY, actual, "bench-ledger")
                score_times[years].append(seconds)
                scopes[years] = len(scores)
                seconds, rows = timed(ForecastLedger.of(ws).targeting, LAST_DAY)
                read_times[years].append(seconds)
                assert len(rows) == HORIZON * len(DEFAULT_MODELS) * len(actual), len(rows)
        table = []
        for years in YEARS:
            score, read = summarise(score_times[years]), summarise(read_times[years])
            table.append({"ledger": f"{years}y", "issue_days": 365 * years, "files": fills[years]["files"],
                          "ledger_mb": fills[years]["mb"], "scopes_scored": scopes[years],
                          "score_median_s": score["median"], "score_min_s": score["min"],
                          "score_max_s": score["max"], "read_median_s": read["median"], "n": score["n"]})
        print_table(table, title=f"Live scoring of d_{LAST_DAY} ({len(actual):,} series, {len(DEFAULT_MODELS)} models)")
        ratio = table[1]["score_median_s"] / table[0]["score_median_s"]
        read_ratio = table[1]["read_median_s"] / table[0]["read_median_s"]
        print(f"\nratio 5y/1y of the median scoring (score_arrival): {ratio:.2f}  "
              f"(target <= {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)}); of the fastest: "
              f"{table[1]['score_min_s'] / table[0]['score_min_s']:.2f}; of the read alone (targeting): {read_ratio:.2f}")
        return 0 if ratio <= TARGET_RATIO else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
