"""Time and peak memory of generating synthetic M5 data, by default the full M5 shape.

    .venv/bin/python bench/bench_synthetic.py                  # 30,490 series x 1,941 days
    .venv/bin/python bench/bench_synthetic.py --items 50 --tracemalloc

Peak RSS is the whole process (interpreter and imports included); tracemalloc counts the numpy and
Python allocations of the call alone, at some cost in speed.
"""
from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

from m5ops.data.synthetic import generate


def main() -> None:
    """Generate once and print the shape, wall time and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=None, help="items per department (default: M5's own counts)")
    parser.add_argument("--days", type=int, default=1941)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the call's own peak allocation")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
