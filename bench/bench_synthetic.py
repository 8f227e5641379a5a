"""Time and peak memory of generating synthetic M5 data, by default the full M5 shape; then the
time to simulate the day after it, as an arrival past the real data does.

    .venv/bin/python bench/bench_synthetic.py                  # 30,490 series x 1,941 days
    .venv/bin/python bench/bench_synthetic.py --items 50 --tracemalloc
    .venv/bin/python bench/bench_synthetic.py --quick          # 5 items per department

Peak RSS is the whole process (interpreter and imports included); tracemalloc counts the numpy and
Python allocations of the call alone, at some cost in speed. The simulated day uses a year of
history (``LOOKBACK_DAYS``); the SNAP flags of that day for every series are also timed both ways,
side by side: a calendar lookup per series (as before) and one per state, spread by state codes.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc

import numpy as np
import pandas as pd

from m5ops.data.simulate import LOOKBACK_DAYS, simulate_next_day
from m5ops.data.synthetic import generate


def median_seconds(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_next_day(data) -> None:
    """The day after the data: simulate_next_day, and the SNAP-flag lookup two ways."""
    calendar = data.calendar.set_index(data.calendar["day"].astype(int), drop=False)
    days = min(LOOKBACK_DAYS, data.sales.shape[1])
    history = calendar.loc[data.last_day - days + 1:data.last_day]
    today = calendar.loc[data.last_day + 1]
    sales, prices = data.sales[:, -days:], data.prices[:, -days:]
    whole = median_seconds(lambda: simulate_next_day(sales, prices, history, today, data.series, seed=1))
    states = data.series["state_id"].astype(str)
    per_series = median_seconds(lambda: np.array([int(today.get(f"snap_{s}", 0)) for s in states]))

    def per_state():
        codes, uniques = pd.factorize(states)
        return np.array([int(today.get(f"snap_{s}", 0)) for s in uniques])[codes]
    by_state = median_seconds(per_state)
    print(f"simulated next day ({days} days of history): median {whole:.3f} s")
    print(f"  its SNAP flags: a lookup per series {per_series:.3f} s, one per state {by_state:.4f} s"
          f" (ratio {by_state / per_series:.3f})")


def main() -> None:
    """Generate once and print the shape, wall time and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=None, help="items per department (default: M5's own counts)")
    parser.add_argument("--days", type=int, default=1941)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the call's own peak allocation")
    parser.add_argument("--quick", action="store_true", help="5 items per department (a smoke run)")
    args = parser.parse_args()
    if args.quick and args.items is None:
        args.items = 5
    if args.tracemalloc:
        tracemalloc.start()
    start = time.perf_counter()
    data = generate(args.items, n_days=args.days, seed=args.seed)
    seconds = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux -> GiB
    out = data.sales.nbytes + data.prices.nbytes
    print(f"{data.n_series} series x {data.sales.shape[1]} days: {seconds:.1f} s, "
          f"peak RSS {peak_rss:.2f} GiB, output arrays {out / 2**30:.2f} GiB (sales {data.sales.dtype})")
    if args.tracemalloc:
        print(f"tracemalloc peak of the call: {tracemalloc.get_traced_memory()[1] / 2**30:.2f} GiB")
        tracemalloc.stop()
    bench_next_day(data)


if __name__ == "__main__":
    main()
